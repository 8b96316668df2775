"""The hook's own copy and the command Claude Code runs: what `mpmd install-hooks` and
`mpmd start` put in place, and what `mpmd doctor` checks the settings files against."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
from pathlib import Path

import mpm_hook
from mpmd import config
from mpmd.durable import write_atomic

DEFAULT_SETTINGS_FILE = Path("~/.claude/settings.json")
# mpm_hook.start is not copied: it runs from the installation, which it needs (it starts
# the daemon through mpmd itself).
INSTALLATION_ONLY = frozenset({"start.py"})


def hook_files() -> tuple[str, ...]:
    """The hook's own modules, copied next to the state folder by install-hooks (the hook
    runs with -I -S from that copy, never from site-packages): every module of mpm_hook."""
    source = Path(mpm_hook.__file__).parent
    return tuple(sorted(p.name for p in source.glob("*.py") if p.name not in INSTALLATION_ONLY))


def install_hook_copy(settings: config.Settings, changed: list[str] | None = None) -> Path:
    """Copy the hook package to the state folder and return its entry script.

    The installed command runs this copy, not the site-packages one, so it keeps working
    when the virtualenv is rebuilt for a new Python; `mpmd start` refreshes it, so an
    upgrade of mpmd updates the hook too. Byte-compiled here so no hook pays for it.
    Owner-only whatever the umask (folders 0700, files 0600): what Claude Code runs must not
    be changeable by others. A mode found otherwise is set right, and said in ``changed``
    (install-hooks prints it). config.FolderRefused for a folder that is not ours.
    """
    import compileall

    source = Path(mpm_hook.__file__).parent
    target = settings.hook_copy_dir / "mpm_hook"
    config.owner_only_dir(settings.state_dir)
    # Made owner-only if missing, left to the walk below if not (so its change is said);
    # __pycache__ too, or compileall would make it by the umask.
    for folder in (settings.hook_copy_dir, target, target / "__pycache__"):
        config.owner_only_dir(folder, tighten=False)
    for name in hook_files():
        data = (source / name).read_bytes()
        dest = target / name
        if not dest.exists() or dest.read_bytes() != data:
            write_atomic(dest, data)
    # A .pyc gets its source's mode less the umask: never looser than the 0600 sources.
    compileall.compile_dir(str(target), quiet=1)
    for path, mode in _owner_only_tree(settings.hook_copy_dir):
        if changed is not None:
            changed.append(f"{path} {mode:04o} -> {0o700 if path.is_dir() else 0o600:04o}")
    return target / "__main__.py"


def _owner_only_tree(top: Path) -> list[tuple[Path, int]]:
    """Folders 0700 and files 0600 under ``top``; the paths changed, with their mode
    before."""
    changed = []
    for folder, dirs, files in os.walk(top):
        for name in (".", *dirs, *files):
            path = Path(folder, name) if name != "." else Path(folder)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
                continue  # chmod would follow a link; another user's is doctor's chown
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                os.chmod(path, want)
                changed.append((path, stat.S_IMODE(st.st_mode)))
    return changed


def hook_command(settings: config.Settings, script: Path) -> str:
    """The exact command written into settings.json: `-I -S` skips site processing (half
    the start-up cost), and the folders are baked in because the hook cannot afford
    platformdirs. MPMD_HOME, when set in Claude Code's environment, still wins."""
    python = sys.executable or shutil.which("python3") or "python3"
    return " ".join(shlex.quote(part) for part in (
        python, "-I", "-S", str(script),
        "--runtime", str(settings.runtime_dir), "--state", str(settings.state_dir),
    ))
