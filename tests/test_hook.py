"""The hook process on its own: what it imports, what it prints, how it fails."""

from __future__ import annotations

import subprocess
import sys

from mpm_hook import wire
from mpmd.ingest.framing import decode_one
from tests.utils import HOOK_SCRIPT, env_for, mpmd_cli, run_hook, spool_files

# What `python -I -S` has loaded before running a script, plus what the hook may add.
ALLOWED_NEW = {"mpm_hook", "mpm_hook.hook", "mpm_hook.paths", "mpm_hook.wire", "_socket"}
# These runs have no daemon: the hook spools, which loads one more small module.
SPOOLING = ALLOWED_NEW | {"mpm_hook.files"}


def test_hook_imports_nothing_beyond_the_interpreter_floor(home):
    probe = (
        "import sys; before = set(sys.modules);"
        f"sys.argv = ['x']; sys.path.insert(0, {str(HOOK_SCRIPT.parent.parent)!r});"
        "import mpm_hook.hook as h; h.deliver('/nonexistent/mpmd.sock', b'', b'0'*16, 0.1);"
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True,
                         text=True, check=True, env=env_for(home)).stdout
    assert set(eval(out)) <= ALLOWED_NEW  # noqa: S307 - our own probe's output


def _imports_of_a_run(home, payload: bytes) -> set[str]:
    """The modules one whole hook run (run(), policy included) adds to `python -I -S`."""
    probe = (
        "import sys; before = set(sys.modules);"
        f"sys.path.insert(0, {str(HOOK_SCRIPT.parent.parent)!r});"
        "import posix, mpm_hook.hook as h;"
        f"payload = {payload!r}; h.read_stdin = lambda: (payload, len(payload));"
        "h.run(sys.argv[1], sys.argv[1]);"
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(home)],
                         capture_output=True, text=True, check=True, env=env_for(home)).stdout
    return set(eval(out.splitlines()[-1]))  # noqa: S307 - our own probe's output


PRE_TOOL_USE = (b'{"hook_event_name": "PreToolUse", "tool_name": "Bash", "cwd": "/p", '
                b'"tool_input": {"command": "sudo rm -rf /"}}')


def test_a_policy_adds_only_its_module_and_the_json_scanner(home):
    # No policy: nothing more, even for an event a policy would decide.
    assert _imports_of_a_run(home, PRE_TOOL_USE) <= SPOOLING
    (home / "policy.toml").write_text('[[rule]]\naction = "deny"\ncommand = "sudo *"\n')
    assert mpmd_cli(home, "policy", "check").returncode == 0
    assert _imports_of_a_run(home, PRE_TOOL_USE) <= SPOOLING | {"mpm_hook.policy", "_json"}
    # Other events do not even look at the policy.
    assert _imports_of_a_run(home, b'{"hook_event_name": "Stop"}') <= SPOOLING
    # A changed policy.toml: the one hook that notices compiles it (tomllib, once).
    (home / "policy.toml").write_text('[[rule]]\naction = "deny"\ncommand = "sudo*"\n')
    assert "mpm_hook.policy_compile" in _imports_of_a_run(home, PRE_TOOL_USE)
    assert "mpm_hook.policy_compile" not in _imports_of_a_run(home, PRE_TOOL_USE)


def test_a_rule_with_a_regular_expression_imports_re_only_when_reached(home):
    (home / "policy.toml").write_text(
        '[[rule]]\naction = "deny"\ntools = "Write"\ncommand = "re:sudo"\n'
        '[[rule]]\naction = "deny"\ntools = "Bash"\ncommand = "re:^sudo "\n')
    assert mpmd_cli(home, "policy", "check").returncode == 0
    assert "re" not in _imports_of_a_run(home, PRE_TOOL_USE.replace(b"Bash", b"Read"))
    assert "re" in _imports_of_a_run(home, PRE_TOOL_USE)


def test_no_daemon_means_one_spool_file_with_the_whole_frame(home):
    payload = b'{"hook_event_name": "Stop", "session_id": "s1"}'
    result = run_hook(home, payload)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    [path] = spool_files(home)
    frame = decode_one(path.read_bytes())
    assert frame.payload == payload and frame.original_size == len(payload)
    assert path.name.endswith(frame.id.hex() + ".frame")


def test_stdin_that_never_closes_is_bounded(home):
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(HOOK_SCRIPT)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env_for(home))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b'{"hook_event_name": "Stop"}')
    proc.stdin.flush()
    # stdin stays open: the hook must stop reading by itself and still deliver the event.
    try:
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == b""
    finally:
        proc.stdin.close()
        proc.kill()
    [path] = spool_files(home)
    assert decode_one(path.read_bytes()).payload == b'{"hook_event_name": "Stop"}'


def test_payload_over_the_limit_is_cut_and_sized(home):
    big = b"x" * (wire.MAX_PAYLOAD_BYTES + 1000)
    assert run_hook(home, big).returncode == 0
    [path] = spool_files(home)
    frame = decode_one(path.read_bytes())
    assert len(frame.payload) == wire.MAX_PAYLOAD_BYTES
    assert frame.original_size == len(big)


def test_internal_errors_are_swallowed_and_logged(home):
    # The spool folder's place is taken by a file: the hook cannot spool, yet exits 0
    # silently and leaves one line in its log.
    (home / "spool").write_text("not a folder")
    result = run_hook(home, b"{}")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    log = (home / "log" / "hook.log").read_text()
    assert log.count("\n") == 1 and "error" in log


def test_without_any_folder_the_hook_still_exits_zero():
    env = {k: v for k, v in env_for(home=__import__("pathlib").Path("/x")).items()
           if k != "MPMD_HOME"}
    result = subprocess.run([sys.executable, "-I", "-S", str(HOOK_SCRIPT)], input=b"{}",
                            capture_output=True, env=env, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
