"""Every error mpmd raises for a person to read, in one tree.

    MpmdError
    ├── ConfigError               a setting mpmd cannot use: config.toml, a flag, a variable
    │   ├── FolderRefused         a folder mpmd would keep its files in and cannot trust
    │   ├── ForwardConfigError    a [[forward]] table
    │   └── ActivationError       sockets a service manager passed that make no sense
    ├── InputError                what a person typed or a page sent
    │   ├── QueryError            the query language (with the bad token's position)
    │   ├── SearchError           a saved search
    │   └── BadRequest            a request to the viewer's history API (its HTTP status)
    │       └── NotFound
    ├── SettingsError             a Claude Code settings file mpmd cannot read or must not
    │                             rewrite
    ├── ServiceError              what `mpmd service` cannot do here
    ├── MissingExtra              an optional dependency that is not installed
    ├── StateError                the daemon is not in the state a command needs
    │   ├── NotRunning
    │   ├── AlreadyRunning
    │   └── ViewerUnavailable
    └── StorageError              what is on disk is not what mpmd wrote
        ├── RingCorrupt
        └── ConsumerSlotsFull

Each also derives from the built-in it always was (ValueError or RuntimeError), so an
``except ValueError`` written before the tree still catches it. The message is one line that
names the thing and, where there is one, the fix: the command line prints it as it is
(mpmd.cli.main turns any MpmdError into its message and exit status 1, in one place).

Not in the tree: the policy's PolicyError, which lives in mpm_hook (the hook imports nothing
of mpmd's), and the signals modules use among themselves (FrameError, NotKept, PeerUnknown,
IndexDamaged...), which a person never sees as such: they are counted, logged or recovered
from where they are caught.
"""

from __future__ import annotations


class MpmdError(Exception):
    """The root: anything mpmd raises for a person to read."""


class ConfigError(MpmdError, ValueError):
    """A setting has a value mpmd cannot use; the message names it and says why."""


class FolderRefused(ConfigError):
    """A folder mpmd would keep its files in is not one it can trust or create; the message
    names it and the fix, on one line."""


class ForwardConfigError(ConfigError):
    """A ``[[forward]]`` table mpmd cannot use; the message names the table and the key."""


class ActivationError(ConfigError):
    """The LISTEN_* variables are meant for us but make no sense; the message says why."""


class InputError(MpmdError, ValueError):
    """What a person typed (a query, a name) or a page sent cannot be used."""


class QueryError(InputError):
    """A query that cannot be run. ``str(e)`` is one line naming the bad token and its column
    (1-based); ``position`` is the token's offset in the text (0-based), ``token`` the token
    as written, so ``text[position:position + len(token)]`` is what to underline."""

    def __init__(self, message: str, position: int, token: str) -> None:
        super().__init__(message)
        self.position = position
        self.token = token

    @property
    def column(self) -> int:
        return self.position + 1


class SearchError(InputError):
    """A saved search that does not exist, or a file of them that does not parse."""


class BadRequest(InputError):
    """A request to the viewer's history API that cannot be answered; ``status`` is the HTTP
    status it gets."""

    status = 400


class NotFound(BadRequest):
    status = 404


class SettingsError(MpmdError, ValueError):
    """A settings file we cannot read or must not rewrite."""


class ServiceError(MpmdError, RuntimeError):
    """Something `mpmd service` cannot do here; the message says what and why."""


class MissingExtra(MpmdError, RuntimeError):
    """An optional dependency (an extra of the package) is not installed."""


class StateError(MpmdError, RuntimeError):
    """The daemon is not in the state a command needs."""


class NotRunning(StateError):
    """No daemon answers on the control socket."""


class AlreadyRunning(StateError):
    """Another daemon holds this state folder's lock."""


class ViewerUnavailable(StateError):
    """The viewer's port could not be served (taken, or not allowed)."""


class StorageError(MpmdError, ValueError):
    """What is on disk is not what mpmd wrote."""


class RingCorrupt(StorageError):
    """The buffer does not hold a valid ring, or a record failed its checksum."""


class ConsumerSlotsFull(StorageError):
    """All MAX_CONSUMERS consumer slots are in use."""
