"""Settings, resolved once: command-line flag > MPMD_* environment variable > config file >
default. The result is a frozen object the daemon and the CLI pass around.

Folders: MPMD_HOME puts everything (socket, ring, pid, lock, journal, spool, config, logs)
under one folder. Without it, platformdirs decides: the runtime folder (socket, ring, pid,
lock) is the user's runtime dir, the state folder (journal, spool, logs) the user's state
dir, the config file lives in the user's config dir.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpm_hook import paths, wire

MiB = 1024 * 1024

CONFIG_FILE_NAME = "config.toml"


class ConfigError(ValueError):
    """A setting has a value mpmd cannot use; the message names it and says why."""


def default_dirs() -> tuple[str, str]:
    """(runtime_dir, state_dir), as the hook must be told them."""
    home = os.environ.get(paths.HOME_ENV)
    if home:
        return home, home
    import platformdirs

    return (
        platformdirs.user_runtime_dir("mpmd", ensure_exists=False),
        platformdirs.user_state_dir("mpmd", ensure_exists=False),
    )


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
    spool_scan_interval_s: float = 2.0
    viewer_port: int = 7710  # 0: any free port; taken: the next free of the nine after it
    viewer_queue_bytes: int = 2 * MiB  # per viewer client; past it the client lags
    viewer_send_timeout_s: float = 30.0  # a viewer socket taking nothing this long is dropped
    log_level: str = "INFO"
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

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
    def config_path(self) -> Path:
        return self.config_dir / CONFIG_FILE_NAME


_TUNABLES = {
    f.name: f.type
    for f in dataclasses.fields(Settings)
    if f.name not in ("runtime_dir", "state_dir", "config_dir", "sources")
}

# Numbers must be positive, except those with their own range here.
_RANGES: dict[str, tuple[int, int, str]] = {
    "viewer_port": (0, 65535, "a TCP port, or 0 for any free one"),
}


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = _TUNABLES[name]
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

    config_path = config_dir / CONFIG_FILE_NAME
    if config_path.exists():
        try:
            data = tomllib.loads(config_path.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
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
    if len(os.fsencode(settings.socket_path)) > 100:
        raise ConfigError(
            f"socket path {settings.socket_path} is too long for a Unix socket "
            "(about 104 bytes at most): set MPMD_HOME to a shorter folder"
        )
