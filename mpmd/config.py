"""Settings, resolved once: command-line flag > MPMD_* environment variable > config file >
default. The result is a frozen object the daemon and the CLI pass around.

Folders: MPMD_HOME puts everything (socket, ring, pid, lock, journal, spool, config, logs)
under one folder. Without it, platformdirs decides the state folder (journal, spool, logs)
and the config folder; the runtime folder (socket, ring, pid, lock) is $XDG_RUNTIME_DIR/mpmd
when that is a folder of the user's alone, else /run/user/<uid>/mpmd (the folder logind
would have named), else ``run`` in the state folder (see runtime_dir_note()).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pwd
import stat
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpm_hook import paths, wire
from mpmd.durable import make_owner_only_folders, publish
from mpmd.errors import ConfigError, FolderRefused

log = logging.getLogger("mpmd.config")

MiB = 1024 * 1024

CONFIG_FILE_NAME = "config.toml"
# In the state folder: the port the http endpoint listens on (the decimal number and a
# newline, written once it listens), and the credential hooks send it (docs/security.md).
HTTP_PORT_NAME = "http.port"
HTTP_TOKEN_NAME = "http.token"
HTTP_OFF = -1  # http_port = -1: no http endpoint


# Where logind puts the user's runtime folder; XDG_RUNTIME_DIR names it when it is set.
SYSTEM_RUNTIME_BASE = "/run/user/{uid}"
# The runtime folder's fallback, inside the state folder (runtime_dir_note() says why).
RUNTIME_FALLBACK_NAME = "run"


def default_dirs() -> tuple[str, str]:
    """(runtime_dir, state_dir), as the hook must be told them."""
    home = os.environ.get(paths.HOME_ENV)
    if home:
        return home, home
    import platformdirs

    state = platformdirs.user_state_dir("mpmd", ensure_exists=False)
    if sys.platform in ("darwin", "win32"):  # no XDG there, and no warning either
        return platformdirs.user_runtime_dir("mpmd", ensure_exists=False), state
    base, _why = _runtime_base()
    return (os.path.join(base, "mpmd") if base else os.path.join(state, RUNTIME_FALLBACK_NAME),
            state)


def runtime_dir_note() -> str | None:
    """One line saying where the runtime folder is and why, when it is not in the user's
    runtime folder; None when it is (or MPMD_HOME decides). `mpmd start` says it once."""
    if os.environ.get(paths.HOME_ENV) or sys.platform in ("darwin", "win32"):
        return None
    base, why = _runtime_base()
    if base is not None:
        return None
    return (f"{why}: mpmd keeps its socket, ring and lock in {default_dirs()[0]} "
            "(owner-only) instead")


def _runtime_base() -> tuple[str | None, str]:
    """The user's runtime folder, or None and why there is none.

    Not platformdirs' fallback: it warns (a RuntimeDirWarning, at every command) and then
    uses runtime-<uid> in /tmp, a name any local user can take first, which tmp cleaners
    age out under a running daemon. The state folder is the user's already, persistent and
    never cleaned; its one cost, a ring on disk rather than tmpfs, only means acked events
    also survive a reboot.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if not xdg:
        why = "XDG_RUNTIME_DIR is not set"
    elif not os.path.isabs(xdg):
        why = f"XDG_RUNTIME_DIR ({xdg}) is not an absolute path"  # the spec says: ignore it
    elif (problem := _runtime_base_problem(xdg)) is None:
        return xdg, ""
    else:
        why = f"XDG_RUNTIME_DIR ({xdg}) {problem}"
    if sys.platform.startswith("linux"):
        system = SYSTEM_RUNTIME_BASE.format(uid=os.geteuid())
        if _runtime_base_problem(system) is None:
            return system, ""
    return None, why


def _runtime_base_problem(path: str) -> str | None:
    """What keeps ``path`` from being the user's runtime folder (the XDG rules: a real
    folder, the user's, 0700), or None."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot be used ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if st.st_uid != os.geteuid():
        return f"belongs to {_user(st.st_uid)}"
    if st.st_mode & 0o077:
        return f"is not a folder of yours alone (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def owner_only_dir(path: Path, *, create: bool = True, tighten: bool = True) -> None:
    """Make ``path`` a folder of ours that only we can use: create it (and missing parents)
    0700 whatever the umask, tighten an existing one of ours to 0700 (``tighten``), and
    refuse, with FolderRefused, a symlink, a non-folder or another user's folder there.

    A symlink is refused even when it points at a folder of ours: whoever can write the
    folder holding it can re-point it later, and mpmd would follow it there.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return
        _create_owner_only(path)
        st = os.lstat(path)
    except OSError as exc:  # a parent that is a file, or that we may not search
        raise FolderRefused(f"cannot use {path}: {exc.strerror} — fix: check the folders "
                            f"above it, or set {paths.HOME_ENV} to a folder of yours") from None
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        raise FolderRefused(
            f"{path} is a symlink (to {os.readlink(path)}), not a folder: mpmd keeps what "
            f"Claude Code did there and will not follow a link — fix: rm {path} (mpmd "
            f"makes the folder), or set {paths.HOME_ENV} to the folder it points to")
    if not stat.S_ISDIR(st.st_mode):
        raise FolderRefused(f"{path} is a file, not a folder — fix: mv {path} {path}.old "
                            f"(or set {paths.HOME_ENV} to another folder)")
    if st.st_uid != me:
        raise FolderRefused(
            f"{path} belongs to {_user(st.st_uid)}, not to you ({_user_name(me)}): mpmd will not "
            f"keep what Claude Code did in another user's folder — fix: sudo chown -R "
            f"{_user_name(me)} {path} if it is yours, else set {paths.HOME_ENV} to a folder "
            "of yours")
    if tighten and stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _create_owner_only(path: Path) -> None:
    try:
        make_owner_only_folders(path)
    except OSError as exc:
        raise FolderRefused(f"cannot create {exc.filename or path}: {exc.strerror} — fix: "
                            f"check the permissions of the folders above it, or set "
                            f"{paths.HOME_ENV} to a folder of yours") from None


def default_config_dir() -> str:
    home = os.environ.get(paths.HOME_ENV)
    if home:
        return home
    import platformdirs

    return platformdirs.user_config_dir("mpmd", ensure_exists=False)


@dataclass(frozen=True)
class Settings:
    runtime_dir: Path
    state_dir: Path
    config_dir: Path
    # Tunables: every one can be set as MPMD_<NAME> or as <name> in config.toml.
    ring_bytes: int = 64 * MiB
    max_frame_bytes: int = wire.MAX_FRAME_BYTES
    segment_bytes: int = 64 * MiB
    retention_days: float = 30.0
    retention_bytes: int = 1024 * MiB
    fsync_interval_s: float = 1.0
    idle_timeout_s: float = 5.0
    max_connections: int = 1024
    # Frame bytes held across all connections between reads (unfinished frames at their
    # announced size); a frame that would pass it is answered BUSY (docs/protocol.md).
    max_partial_bytes: int = 64 * MiB
    spool_scan_interval_s: float = 2.0
    viewer_port: int = 7710  # 0: any free port; taken: the next free of the nine after it
    viewer_queue_bytes: int = 2 * MiB  # per viewer client; past it the client lags
    viewer_send_timeout_s: float = 30.0  # a viewer socket taking nothing this long is dropped
    # Claude Code's `http` hooks post here, on 127.0.0.1 only (docs/security.md); 0: any
    # free port, -1: off. Not the viewer's 7710 and the nine after it.
    http_port: int = 7720
    log_level: str = "INFO"
    # Folders the transcript follower may read (os.pathsep between them); empty: Claude
    # Code's own, $CLAUDE_CONFIG_DIR/projects or ~/.claude/projects (docs/transcripts.md).
    transcript_roots: str = ""
    # How long a prompt or tool call read off a transcript waits for its hook event before
    # it is journaled from the transcript (docs/events.md, Backfill).
    transcript_backfill_after_s: float = 60.0
    # Where the viewer is reached from elsewhere, through a tunnel the user runs (tailscale
    # serve, ssh -L): notifications' links point there, and the viewer accepts its Host for
    # action links only (docs/notify.md). Empty: links point at the viewer on loopback.
    viewer_public_url: str = ""
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # config.toml's [[forward]] tables as read, checked by mpmd.forward.config.parse (a bad
    # one stops that forwarder, not the daemon): the file is read once, here.
    forward_tables: Any = field(default_factory=list, compare=False, repr=False)
    # config.toml's [prices] table as read, checked by mpmd.transcripts.prices.from_config.
    price_tables: Any = field(default_factory=dict, compare=False, repr=False)
    # config.toml's [[notify]] tables as read, checked by mpmd.notify.rules.parse (a bad one
    # stops that rule, not the daemon).
    notify_tables: Any = field(default_factory=list, compare=False, repr=False)

    @property
    def socket_path(self) -> Path:
        return Path(paths.socket_path(str(self.runtime_dir)))

    @property
    def ring_path(self) -> Path:
        return self.runtime_dir / paths.RING_NAME

    @property
    def pid_path(self) -> Path:
        return self.runtime_dir / paths.PID_NAME

    @property
    def lock_path(self) -> Path:
        return self.runtime_dir / paths.LOCK_NAME

    @property
    def control_path(self) -> Path:
        return self.runtime_dir / "control.sock"

    @property
    def journal_dir(self) -> Path:
        return self.state_dir / paths.JOURNAL_NAME

    @property
    def spool_dir(self) -> Path:
        return Path(paths.spool_dir(str(self.state_dir)))

    @property
    def index_path(self) -> Path:
        return self.state_dir / "index.sqlite3"

    @property
    def rejected_dir(self) -> Path:
        return self.state_dir / "rejected"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / paths.LOG_NAME

    @property
    def log_path(self) -> Path:
        return self.log_dir / "mpmd.log"

    @property
    def hook_copy_dir(self) -> Path:
        return self.state_dir / paths.HOOK_COPY_NAME

    @property
    def http_port_path(self) -> Path:
        return self.state_dir / HTTP_PORT_NAME

    @property
    def http_token_path(self) -> Path:
        return self.state_dir / HTTP_TOKEN_NAME

    @property
    def config_path(self) -> Path:
        return self.config_dir / CONFIG_FILE_NAME

    @property
    def frame_limit_path(self) -> Path:
        return self.state_dir / wire.FRAME_LIMIT_NAME

    def publish_frame_limit(self) -> None:
        """Tell hooks max_frame_bytes (docs/protocol.md), so they cut payloads to fit it
        rather than have their frames refused; replaced whole, a hook never reads half.
        A failure is only logged: hooks then keep to an older limit or the wire's ceiling,
        and the daemon cuts what they send over its own (mpmd.ingest.spool)."""
        path = self.frame_limit_path
        try:
            publish(path, f"{self.max_frame_bytes}\n".encode())
        except OSError as exc:
            log.warning("could not publish max_frame_bytes for hooks in %s: %s", path, exc)


_TUNABLES = {
    f.name: f.type
    for f in dataclasses.fields(Settings)
    if f.name not in ("runtime_dir", "state_dir", "config_dir", "sources", "forward_tables",
                      "price_tables", "notify_tables")
}

# Numbers must be positive, except those with their own range here.
_RANGES: dict[str, tuple[int, int, str]] = {
    "viewer_port": (0, 65535, "a TCP port, or 0 for any free one"),
    "http_port": (HTTP_OFF, 65535, "a TCP port, 0 for any free one, or -1 (or off) for none"),
    "transcript_backfill_after_s": (0, 86400, "seconds, at most a day"),
}


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = _TUNABLES[name]
    if name == "http_port" and str(value).strip().lower() == "off":
        value = HTTP_OFF
    try:
        if kind == "int":
            result: Any = int(value)
        elif kind == "float":
            result = float(value)
        else:
            result = str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} = {value!r} (from {origin}) is not a valid {kind}") from None
    if name in _RANGES:
        low, high, what = _RANGES[name]
        if not low <= result <= high:
            raise ConfigError(f"{name} = {value!r} (from {origin}) must be {what}")
    elif kind in ("int", "float") and result <= 0:
        raise ConfigError(f"{name} = {value!r} (from {origin}) must be positive")
    return result


def load(**flags: Any) -> Settings:
    """Resolve the settings. ``flags`` are command-line values (None means not given)."""
    runtime_dir, state_dir = default_dirs()
    config_dir = Path(default_config_dir())
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    forward_tables: Any = []
    price_tables: Any = {}
    notify_tables: Any = []

    config_path = config_dir / CONFIG_FILE_NAME
    if config_path.exists():
        try:
            data = tomllib.loads(config_path.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
        forward_tables = data.get("forward", [])
        price_tables = data.get("prices", {})
        notify_tables = data.get("notify", [])
        for key, value in data.items():
            if key in _TUNABLES:
                values[key] = _coerce(key, value, str(config_path))
                sources[key] = str(config_path)
    for key in _TUNABLES:
        env_name = "MPMD_" + key.upper()
        if env_name in os.environ:
            values[key] = _coerce(key, os.environ[env_name], env_name)
            sources[key] = env_name
    for key, value in flags.items():
        if value is not None and key in _TUNABLES:
            values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
            sources[key] = "flag"

    settings = Settings(
        runtime_dir=Path(runtime_dir),
        state_dir=Path(state_dir),
        config_dir=config_dir,
        sources=sources,
        forward_tables=forward_tables,
        price_tables=price_tables,
        notify_tables=notify_tables,
        **values,
    )
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    # The largest record (a max-size frame's payload, escaped and enriched) must fit a
    # quarter of the ring, the ring's per-record limit, with room to spare.
    if settings.ring_bytes < 6 * settings.max_frame_bytes:
        raise ConfigError(
            f"ring_bytes ({settings.ring_bytes}) must be at least 6 x max_frame_bytes "
            f"({settings.max_frame_bytes}) so the largest event always fits"
        )
    if settings.max_frame_bytes > wire.MAX_FRAME_BYTES:
        raise ConfigError(f"max_frame_bytes may not exceed {wire.MAX_FRAME_BYTES}")
    if settings.max_frame_bytes < wire.MIN_FRAME_BYTES:
        raise ConfigError(f"max_frame_bytes must be at least {wire.MIN_FRAME_BYTES}")
    if settings.http_port > 0 and settings.http_port == settings.viewer_port:
        raise ConfigError(f"http_port and viewer_port are both {settings.http_port}: the "
                          "hooks' endpoint and the viewer need a port each")
    if settings.viewer_public_url:
        public_host(settings.viewer_public_url)  # raises ConfigError when it is not a URL
    if len(os.fsencode(settings.socket_path)) > 100:
        raise ConfigError(
            f"socket path {settings.socket_path} is too long for a Unix socket "
            "(about 104 bytes at most): set MPMD_HOME to a shorter folder"
        )


def public_host(url: str) -> str:
    """The Host (``name`` or ``name:port``, lower case) of ``viewer_public_url``; ConfigError
    unless it is an http(s) URL with a host and no user, query or fragment."""
    from urllib.parse import urlsplit

    where = f"viewer_public_url = {url!r}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.password or parts.query or parts.fragment or len(url) > 512:
        raise ConfigError(f"{where} must be an http:// or https:// address with a host and "
                          "nothing after its path, e.g. https://box.tailnet.ts.net")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def bounded_number(value: Any, whole: bool, low: float, high: float) -> Any:
    """``value`` when it is a number (a whole one if ``whole``; never a bool) from ``low`` to
    ``high``, as a float unless whole; else ValueError saying what it must be. For the
    tables of config.toml ([[forward]], [[notify]])."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not whole:
        ok = ok or isinstance(value, float)
    if not ok or not low <= value <= high:
        what = "a whole number" if whole else "a number"
        raise ValueError(f"must be {what} from {low:g} to {high:g} (got {value!r})")
    return value if whole else float(value)
