"""The harness that runs the pinned Claude Code CLI against the scripted API, in isolation.

Each session gets its own folders: a ``HOME`` whose ``.claude/settings.json`` is the one
``mpmd install-hooks`` wrote and whose ``.claude.json`` has onboarding done and the project
trusted, an ``MPMD_HOME``, and a project folder to work in. Nothing leaves the machine: the
model is the loopback stand-in (tests.claude.api), and telemetry, non-essential traffic and
the auto-updater are off.

The CLI is found at ``MPMD_CLAUDE`` when that is set (to run the suite against another
version), else in the ignored folder ``make claude-code`` installs the pinned version into.
A test that needs it and does not find it fails under CI (``CI=true``) and skips locally,
naming the install command.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.utils import ROOT, Daemon, short_tempdir, wait_until

# The version the conformance suite is pinned to; the Makefile's CLAUDE_CODE_VERSION says the
# same (a test checks they agree).
PINNED_VERSION = "2.1.328"
INSTALL_DIR = ROOT / ".claude-code"
INSTALL_COMMAND = "make claude-code"
API_KEY = "sk-ant-api03-mpmd-conformance-suite-key-0000000000AA"


def platform_package() -> str:
    """npm's name for this machine's native build, e.g. claude-code-linux-x64."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower())
    return f"claude-code-{sys.platform}-{arch}"


def find_claude() -> Path | None:
    """The CLI to test: MPMD_CLAUDE, else the pinned install; None when neither is there."""
    override = os.environ.get("MPMD_CLAUDE")
    if override:
        path = Path(override)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    binary = INSTALL_DIR / "node_modules" / "@anthropic-ai" / platform_package() / "claude"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def require_claude() -> Path:
    """The CLI, or the test fails (under CI) or skips (locally), naming the fix."""
    path = find_claude()
    if path is not None:
        return path
    where = (f"MPMD_CLAUDE={os.environ['MPMD_CLAUDE']} is not an executable file"
             if os.environ.get("MPMD_CLAUDE") else
             f"Claude Code {PINNED_VERSION} is not installed; run `{INSTALL_COMMAND}`")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(where)
    pytest.skip(where)


def claude_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.split()[0] if out.stdout.strip() else "?"


@dataclass
class Headless:
    """What one `claude -p` run printed: its stream-json messages, parsed."""

    returncode: int
    messages: list[dict[str, Any]]
    stderr: str

    @property
    def session_id(self) -> str:
        return next(m["session_id"] for m in self.messages if m.get("session_id"))

    @property
    def hooks_started(self) -> list[dict[str, Any]]:
        """Claude Code's own record of every hook it started (--include-hook-events)."""
        return [m for m in self.messages
                if m.get("type") == "system" and m.get("subtype") == "hook_started"]

    @property
    def hook_responses(self) -> list[dict[str, Any]]:
        return [m for m in self.messages
                if m.get("type") == "system" and m.get("subtype") == "hook_response"]

    @property
    def result(self) -> dict[str, Any]:
        return next(m for m in reversed(self.messages) if m.get("type") == "result")

    def tool_results(self) -> list[dict[str, Any]]:
        """The tool_result blocks Claude Code sent back to the model, in order."""
        return [b for m in self.messages if m.get("type") == "user"
                for b in (m.get("message") or {}).get("content") or []
                if isinstance(b, dict) and b.get("type") == "tool_result"]


@dataclass
class Sandbox:
    """One isolated place to run Claude Code sessions with mpmd's hooks installed."""

    transport: str = "command"  # how mpmd's hooks reach the daemon: command or http
    base: Path = field(default_factory=short_tempdir)
    claude: Path = field(default_factory=require_claude)

    def __post_init__(self) -> None:
        self.home = self.base / "home"
        self.project = self.base / "project"
        self.mpmd_home = self.base / "m"
        for folder in (self.home, self.project):
            folder.mkdir(parents=True, exist_ok=True)
        # Onboarding done, the API key approved, the project trusted: an interactive session
        # starts straight at its prompt.
        (self.home / ".claude.json").write_text(json.dumps({
            "hasCompletedOnboarding": True,
            "lastOnboardingVersion": PINNED_VERSION,
            "numStartups": 1,
            "theme": "dark",
            "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
            "projects": {str(self.project): {
                "hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True,
                "allowedTools": [],
            }},
        }))

    @property
    def settings_path(self) -> Path:
        return self.home / ".claude" / "settings.json"

    def env(self, api_url: str, **extra: str) -> dict[str, str]:
        """The whole environment of a Claude Code process: nothing inherited but PATH."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            "MPMD_HOME": str(self.mpmd_home),
            "ANTHROPIC_BASE_URL": api_url,
            "ANTHROPIC_API_KEY": API_KEY,
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }
        env.update(extra)
        return env

    def mpmd(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """An mpmd command as the user runs it, with this sandbox's HOME and MPMD_HOME
        (and ``extra`` variables, e.g. the daemon's MPMD_HTTP_PORT)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPMD_")}
        env.update(HOME=str(self.home), MPMD_HOME=str(self.mpmd_home), **extra)
        return subprocess.run([sys.executable, "-m", "mpmd", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    @contextlib.contextmanager
    def daemon(self, **env: str) -> Iterator[Daemon]:
        """This sandbox's daemon (any free viewer and http ports), with mpmd's hooks
        installed for ``transport`` once it runs: http entries need its port."""
        self.mpmd_home.mkdir(mode=0o700, exist_ok=True)
        with Daemon(self.mpmd_home, HOME=str(self.home), MPMD_VIEWER_PORT="0", **env) as d:
            self.install_hooks(self.transport, MPMD_HTTP_PORT="0")
            yield d

    def install_hooks(self, transport: str = "command", **env: str) -> None:
        """`mpmd install-hooks`, the transport named: `auto` would choose by what it finds
        on this machine (a `claude` on PATH, a daemon running), and a test must not. For
        http, install once the daemon runs (it publishes its port), with its settings:
        tests.utils.Daemon takes any free port, so pass MPMD_HTTP_PORT="0"."""
        out = self.mpmd("install-hooks", "--transport", transport, **env)
        assert out.returncode == 0, out.stderr

    def write_settings(self, update: Callable[[dict[str, Any]], None]) -> None:
        """Change ~/.claude/settings.json (after install-hooks), e.g. to add permissions."""
        data = json.loads(self.settings_path.read_text()) if self.settings_path.exists() else {}
        update(data)
        self.settings_path.parent.mkdir(parents=True, exist_ok=True)
        self.settings_path.write_text(json.dumps(data, indent=2))

    def headless(self, api_url: str, prompt: str, *args: str, allowed_tools: Sequence[str] = (),
                 timeout: float = 120, **env: str) -> Headless:
        """One `claude -p` session, with Claude Code's record of the hooks it ran."""
        cmd = [str(self.claude), "-p", prompt, "--output-format", "stream-json", "--verbose",
               "--include-hook-events"]
        if allowed_tools:
            cmd += ["--allowedTools", " ".join(allowed_tools)]
        cmd += list(args)
        out = subprocess.run(cmd, cwd=self.project, env=self.env(api_url, **env),
                             capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        messages = []
        for line in out.stdout.splitlines():
            try:
                messages.append(json.loads(line))
            except ValueError:
                continue  # not a message (the CLI may print warnings)
        return Headless(out.returncode, messages, out.stderr)

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class Terminal:
    """An interactive Claude Code session in a tmux pane: keys in, screen text out."""

    def __init__(self, sandbox: Sandbox, api_url: str, *args: str, width: int = 160,
                 height: int = 50, **env: str) -> None:
        if shutil.which("tmux") is None:
            require_tool("tmux")
        self.name = f"mpmd-{os.getpid()}-{time.monotonic_ns()}"
        self.socket = str(sandbox.base / "tmux.sock")
        environment = sandbox.env(api_url, **env)
        command = " ".join(shlex.quote(p) for p in (
            "env", "-i", *(f"{k}={v}" for k, v in environment.items()), str(sandbox.claude),
            *args))
        subprocess.run(["tmux", "-S", self.socket, "new-session", "-d", "-s", self.name,
                        "-x", str(width), "-y", str(height), "-c", str(sandbox.project),
                        command], check=True, env={**os.environ, "TMUX": ""})
        # Keep the pane when Claude Code exits, so its last screen can still be read.
        subprocess.run(["tmux", "-S", self.socket, "set-option", "-t", self.name,
                        "remain-on-exit", "on"], check=False)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "-S", self.socket, "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        args = ["tmux", "-S", self.socket, "send-keys", "-t", self.name]
        if literal:
            args.append("-l")
        subprocess.run([*args, *keys], check=True)

    def type(self, text: str) -> None:
        """Type text (no Enter)."""
        self.keys(text, literal=True)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """The screen once it shows ``text`` (polling the pane is the only way to read it)."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")

    def submit(self, prompt: str) -> None:
        """Type a prompt at Claude Code's input line, once it shows, and send it."""
        self.wait_for("\u276f")
        self.type(prompt)
        self.keys("Enter")

    def wait_gone(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text in self.screen():
            assert time.monotonic() < deadline, f"{text!r} stayed on the screen:\n{self.screen()}"
            time.sleep(0.05)

    def press_until(self, key: str, done: Callable[[str], bool], timeout: float = 30) -> str:
        """Press ``key`` until the screen satisfies ``done``: a dialog ignores keys for a
        moment after it opens (so a stray key does not answer it), which no screen shows."""
        deadline = time.monotonic() + timeout
        while True:
            self.keys(key)
            for _ in range(10):
                screen = self.screen()
                if done(screen):
                    return screen
                time.sleep(0.05)
            assert time.monotonic() < deadline, f"{key} did nothing; the screen was:\n{screen}"

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


class Gate:
    """Holds a session still at a moment the test wants to look at: the scripted Bash
    command ``cat gate`` reads a FIFO in the project, so it blocks until the test opens it."""

    command = "cat gate"

    def __init__(self, project: Path) -> None:
        self.path = project / "gate"
        os.mkfifo(self.path)

    def open(self) -> None:
        def opened() -> bool:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # the command is not reading yet
                    return False
                raise
            try:
                os.write(fd, b"open\n")
            finally:
                os.close(fd)
            return True

        wait_until(opened, "the gated command reads its FIFO")


def require_tool(name: str) -> None:
    what = f"{name} is not installed (apt-get install {name})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(what)
    pytest.skip(what)
