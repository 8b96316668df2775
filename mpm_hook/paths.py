"""Where the socket, spool and hook log live, given the two base folders.

Shared by the hook and the daemon so the two can never disagree on a file name. The base
folders themselves come from ``MPMD_HOME`` (both bases are that one folder), or from the
platform's directories, which the daemon resolves with platformdirs and ``mpmd
install-hooks`` bakes into the hook command (the hook cannot afford to import platformdirs).
Stdlib-free on purpose: plain string joins, no ``os.path``.
"""

HOME_ENV = "MPMD_HOME"

# In the runtime folder (owner-only, may be a tmpfs that does not survive a reboot).
SOCKET_NAME = "mpmd.sock"
RING_NAME = "ring.mmap"
PID_NAME = "mpmd.pid"
LOCK_NAME = "mpmd.lock"

# In the state folder (persistent).
SPOOL_NAME = "spool"
JOURNAL_NAME = "journal"
LOG_NAME = "log"
HOOK_LOG_NAME = "hook.log"
HOOK_COPY_NAME = "hook"
# The policy's compiled form (mpm_hook.policy), kept in step with policy.toml, which lives
# in the config folder (the hook is not told that folder; the compiled form names it).
POLICY_COMPILED_NAME = "policy.compiled"

# In the config folder.
POLICY_NAME = "policy.toml"


def join(base: str, *names: str) -> str:
    return "/".join((base.rstrip("/") or "/", *names)) if base != "/" else "/" + "/".join(names)


def socket_path(runtime_dir: str) -> str:
    return join(runtime_dir, SOCKET_NAME)


def spool_dir(state_dir: str) -> str:
    return join(state_dir, SPOOL_NAME)


def hook_log_path(state_dir: str) -> str:
    return join(state_dir, LOG_NAME, HOOK_LOG_NAME)


def policy_compiled_path(state_dir: str) -> str:
    return join(state_dir, POLICY_COMPILED_NAME)
