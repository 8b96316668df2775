"""`mpmd doctor`: each check on plain data (mpmd.ops.doctor), the I/O that gathers the facts,
and the command end to end against a real daemon and real settings files written by
`mpmd install-hooks` into a temporary HOME."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from mpmd import config
from mpmd.ops import doctor as dr
from mpmd.ops.doctor import FAIL, OK, SKIP, WARN, Check, HookTarget, PathMode, SettingsFile
from mpmd.ops.hooks_settings import INSTALLED_EVENTS, ClaudeCode, Endpoint, HttpHook, install
from mpmd.status import Status
from tests.utils import Daemon, env_for, run_hook, short_tempdir

HOME = "/home/you"
PY = "/home/you/.venvs/mpmd/bin/python"
SCRIPT = "/home/you/.local/state/mpmd/hook/mpm_hook/__main__.py"
RUN = "/run/user/1000/mpmd"
STATE = "/home/you/.local/state/mpmd"
CMD = f"{PY} -I -S {SCRIPT} --runtime {RUN} --state {STATE}"
TARGET = HookTarget(CMD, RUN, STATE)
PATHS = {PY: "executable", SCRIPT: "file"}
OLD_PY = "/home/you/.venvs/old/bin/python"
OLD_SCRIPT = "/home/you/old-state/hook/mpm_hook/__main__.py"
OLD = f"{OLD_PY} -I -S {OLD_SCRIPT} --runtime {RUN} --state {STATE}"
USER_HOOK = {"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/guard.sh"}]}


TOKEN = "f" * 64
UP = Endpoint(7720, running=True, port=7720, token=TOKEN)
CLAUDE = ClaudeCode("/usr/local/bin/claude", "2.1.328")


def installed(command: str = CMD, base: dict | None = None, port: int | None = None,
              token: str = TOKEN) -> dict:
    """What install-hooks writes: command entries, or with ``port``, http entries."""
    http = HttpHook(port, token) if port is not None else None
    return install(base or {}, command, http=http)[0]


def user(data: dict | None, mode: int = 0o600) -> SettingsFile:
    return SettingsFile("user", f"{HOME}/.claude/settings.json", "~/.claude/settings.json",
                        data=data, mode=mode)


def project(data: dict | None, scope: str = "project") -> SettingsFile:
    name = "settings.json" if scope == "project" else "settings.local.json"
    return SettingsFile(scope, f"/home/you/app/.claude/{name}", f".claude/{name}", data=data)


def entries(*files: SettingsFile, paths: dict | None = None,
            endpoint: Endpoint | None = UP) -> list[Check]:
    return dr.check_hook_entries(files, TARGET, PATHS if paths is None else paths, HOME,
                                 endpoint)


def one(checks: list[Check]) -> Check:
    assert len(checks) == 1, checks
    return checks[0]


# ---- Check and the small helpers ------------------------------------------------------------


def test_check_line_and_json():
    c = Check("hook entries", FAIL, "~/.claude/settings.json: broken", "mpmd install-hooks")
    assert c.line() == ("FAIL hook entries: ~/.claude/settings.json: broken "
                        "— fix: mpmd install-hooks")
    assert Check("daemon", OK, "reachable").line() == "OK   daemon: reachable"
    assert c.as_dict() == {"name": "hook entries", "level": FAIL,
                           "message": "~/.claude/settings.json: broken",
                           "fix": "mpmd install-hooks"}


def test_summary():
    assert dr.summary([Check("a", OK, ""), Check("b", OK, "")]) == "all 2 checks OK"
    assert dr.summary([Check("a", OK, ""), Check("b", SKIP, "")]) == "all 1 checks OK (1 skipped)"
    assert dr.summary([Check("a", FAIL, ""), Check("b", WARN, ""), Check("c", SKIP, ""),
                       Check("d", OK, "")]) == "1 FAIL, 1 WARN, 1 SKIP of 4 checks"


def test_tilde_and_duration():
    assert dr.tilde("/home/you/.claude/settings.json", HOME) == "~/.claude/settings.json"
    assert dr.tilde("/home/yours/x", HOME) == "/home/yours/x"
    assert dr.duration(5) == "5 s"
    assert dr.duration(3 * 3600 + 100) == "3 h"
    assert dr.duration(20 * 60) == "20 min"
    assert dr.duration(5 * 86400) == "5 days"


@pytest.mark.parametrize(("command", "parsed"), [
    (CMD, dr.ParsedCommand(PY, SCRIPT, RUN, STATE)),
    ("/usr/bin/python3 -I -S '/a b/hook/mpm_hook' --runtime /r --state /s",
     dr.ParsedCommand("/usr/bin/python3", "/a b/hook/mpm_hook", "/r", "/s")),
    ("mpm-hook", dr.ParsedCommand("mpm-hook", None, None, None)),
    ("MPMD_HOME=/h /usr/local/bin/mpm-hook",
     dr.ParsedCommand("/usr/local/bin/mpm-hook", None, "/h", "/h")),
])
def test_parse_command(command, parsed):
    assert dr.parse_command(command) == parsed


def test_parse_command_refuses_what_it_cannot_split():
    with pytest.raises(ValueError):
        dr.parse_command("python 'mpm_hook")
    assert dr.command_paths("python 'mpm_hook") == []
    assert dr.command_paths(CMD) == [PY, SCRIPT]


# ---- config and daemon ------------------------------------------------------------------------


def test_check_config():
    assert dr.check_config(None, {}, HOME) == Check("config", OK, "all defaults")
    assert dr.check_config(None, {"viewer_port": f"{HOME}/.config/mpmd/config.toml"},
                           HOME).message == "viewer_port from ~/.config/mpmd/config.toml"
    c = dr.check_config("viewer_port = 'x' (from MPMD_VIEWER_PORT) is not a valid int", {}, HOME)
    assert c.level == FAIL and "mpmd will not start with it" in c.message


RUNNING = {"running": True, "pid": 1234, "uptime_s": 3 * 3600 + 5, "version": "0.1.0"}


def S(fields: dict) -> Status:
    """A daemon's status as the control socket would send it."""
    return msgspec.convert(fields, Status)


def test_check_daemon_ok():
    c = dr.check_daemon(S(RUNNING), False, "socket", "0.1.0", "/run/m/mpmd.sock")
    assert c.line() == "OK   daemon: reachable (pid 1234, up 3 h)"


def test_check_daemon_warns_about_an_older_daemon():
    c = dr.check_daemon(S({**RUNNING, "version": "0.0.9"}), False, "socket", "0.1.0", "s")
    assert c.level == WARN and c.fix == "mpmd stop && mpmd start"
    assert "it runs mpmd 0.0.9, and 0.1.0 is installed" in c.message


def test_check_daemon_fails():
    down = dr.check_daemon(None, False, "missing", "0.1.0", "s")
    assert down.line() == ("FAIL daemon: not running (hooks spool events to disk until it "
                           "starts) — fix: mpmd start")
    hung = dr.check_daemon(None, True, "socket", "0.1.0", "s")
    assert hung.level == FAIL and "does not answer" in hung.message
    assert hung.fix.startswith("mpmd stop && mpmd start")
    gone = dr.check_daemon(S(RUNNING), False, "missing", "0.1.0", "/run/m/mpmd.sock")
    assert gone.level == FAIL
    assert "its socket /run/m/mpmd.sock is missing: hooks cannot reach it" in gone.message


# ---- permissions ------------------------------------------------------------------------------


def test_check_permissions_ok():
    modes = [PathMode("~/.local/state/mpmd", "dir", 0o700, 1000),
             PathMode("/run/m/mpmd.sock", "socket", 0o600, 1000),
             PathMode("~/.config/mpmd", "dir", 0o755, 1000, "no-write")]
    assert dr.check_permissions(modes, 1000) == Check(
        "permissions", OK, "owner-only (3 paths checked)")
    assert dr.check_permissions([], 1000).level == OK


def test_check_permissions_fails_when_others_can_read():
    c = dr.check_permissions([PathMode("~/.local/state/mpmd/journal", "dir", 0o755, 1000),
                              PathMode("~/.local/state/mpmd/viewer-token", "file", 0o640, 1000)],
                             1000)
    assert c.line() == (
        "FAIL permissions: ~/.local/state/mpmd/journal is 0755: group and others can list it; "
        "~/.local/state/mpmd/viewer-token is 0640: group can read it "
        "— fix: chmod 700 ~/.local/state/mpmd/journal; chmod 600 ~/.local/state/mpmd/viewer-token")


def test_check_permissions_other_owner_and_writable_code():
    c = dr.check_permissions([PathMode("/x/state", "dir", 0o700, 0),
                              PathMode("~/.config/mpmd/policy.toml", "file", 0o666, 1000,
                                       "no-write")], 1000)
    assert c.level == FAIL
    assert c.message == ("/x/state belongs to uid 0, not to you; ~/.config/mpmd/policy.toml "
                         "is 0666: group and others can change it")
    assert c.fix == "chown $USER /x/state; chmod go-w ~/.config/mpmd/policy.toml"


def test_check_permissions_warns_about_a_folder_others_can_only_enter():
    c = dr.check_permissions([PathMode("/x/my state", "dir", 0o711, 1000)], 1000)
    assert c.level == WARN
    assert c.fix == "chmod 700 '/x/my state'"


# ---- hook entries -----------------------------------------------------------------------------


def test_hook_entries_ok():
    assert entries(user(installed()), project(None)) == [
        Check("hook entries", OK, "~/.claude/settings.json: 31 events, current command")]


def test_hook_entries_missing_interpreter_is_the_brief_line():
    data = installed()
    data["hooks"]["PreToolUse"][0]["hooks"][0]["command"] = CMD.replace(PY, "/old/venv/bin/python")
    c = one(entries(user(data), paths={**PATHS, "/old/venv/bin/python": "missing"}))
    assert c.line() == ("FAIL hook entries: ~/.claude/settings.json: PreToolUse runs "
                        "/old/venv/bin/python, which does not exist — fix: mpmd install-hooks")


def test_hook_entries_stale_install_after_an_upgrade():
    data = installed(OLD, {"hooks": {"PreToolUse": [USER_HOOK]}})
    c = one(entries(user(data), paths={OLD_PY: "missing", OLD_SCRIPT: "missing"}))
    assert c.level == FAIL and c.fix == "mpmd install-hooks"
    assert c.message == ("~/.claude/settings.json: 31 events (PreToolUse, PostToolUse, "
                         "PostToolUseFailure, ...) run ~/.venvs/old/bin/python and "
                         "~/old-state/hook/mpm_hook/__main__.py, which do not exist")


def test_hook_entries_missing_script_or_not_executable():
    c = one(entries(user(installed()), paths={PY: "executable", SCRIPT: "missing"}))
    assert c.level == FAIL and "run ~/.local/state/mpmd/hook/mpm_hook/__main__.py, which " \
                               "does not exist" in c.message
    c = one(entries(user(installed()), paths={PY: "file", SCRIPT: "file"}))
    assert c.level == FAIL and "which is not an executable file" in c.message


def test_hook_entries_console_script_not_on_path():
    c = one(entries(user(installed("mpm-hook")), paths={"mpm-hook": "missing"}))
    assert c.level == FAIL and c.message.endswith("run mpm-hook, which is not on PATH")


def test_hook_entries_console_script_on_path_warns():
    c = one(entries(user(installed("mpm-hook")), paths={"mpm-hook": "executable"}))
    assert c.level == WARN
    assert c.message.endswith("run another hook command than install-hooks writes now "
                              "(console script mpm-hook)")


def test_hook_entries_other_folders_fail():
    other = CMD.replace(f"--state {STATE}", "--state /elsewhere")
    c = one(entries(user(installed(other))))
    assert c.level == FAIL
    assert c.message.endswith(f"send events to {RUN} + /elsewhere, not to this mpmd's "
                              f"{RUN} + ~/.local/state/mpmd")


def test_hook_entries_other_working_interpreter_warns():
    other = CMD.replace(PY, "/usr/bin/python3")
    c = one(entries(user(installed(other)), paths={**PATHS, "/usr/bin/python3": "executable"}))
    assert c.level == WARN and c.fix == "mpmd install-hooks"
    assert "(interpreter /usr/bin/python3, now ~/.venvs/mpmd/bin/python)" in c.message


def test_hook_entries_entry_unlike_what_install_writes_warns():
    data = installed()
    data["hooks"]["Stop"][0]["hooks"][0]["timeout"] = 600
    c = one(entries(user(data)))
    assert c.level == WARN
    assert c.message.startswith("~/.claude/settings.json: Stop has an entry unlike the one "
                                "install-hooks writes")


def test_hook_entries_none_anywhere_fails():
    c = one(entries(user({"hooks": {"PreToolUse": [USER_HOOK]}}), project(None)))
    assert c.line() == ("FAIL hook entries: mpmd's hook is in none of ~/.claude/settings.json, "
                        ".claude/settings.json: Claude Code sends it nothing "
                        "— fix: mpmd install-hooks")


def test_hook_entries_partial_coverage_warns():
    data = installed()
    del data["hooks"]["Stop"], data["hooks"]["SessionEnd"]
    checks = entries(user(data))
    assert checks[0].level == OK
    assert checks[1] == Check("hook entries", WARN, "SessionEnd and Stop have no mpmd entry "
                              "in any settings file (not recorded)", "mpmd install-hooks")


def test_hook_entries_unreadable_file_fails():
    bad = SettingsFile("user", "/h/.claude/settings.json", "~/.claude/settings.json",
                       error="cannot read it: 3:1: invalid JSON (Expecting value); not touching it")
    checks = entries(bad, project(installed()))
    assert checks[0].level == FAIL and "correct the file by hand" in checks[0].fix
    data = installed()
    data["hooks"]["Stop"] = {"not": "a list"}  # install-hooks refuses to rewrite this too
    checks = entries(user(data))
    assert checks[0].level == FAIL
    assert checks[0].message == ('~/.claude/settings.json: "hooks.Stop" is a dict, not a list '
                                 "(install-hooks refuses it too)")


def test_hook_entries_in_a_project_file_say_which_command_repairs_them():
    stale = installed(OLD)
    broken = {OLD_PY: "missing", OLD_SCRIPT: "missing", **PATHS}
    # The user file has mpmd's entries: the project's copy goes.
    checks = entries(user(installed()), project(stale), paths=broken)
    assert checks[1].fix == "mpmd uninstall-hooks --settings .claude/settings.json"
    # No mpmd entries in the user file: the project file is the one to repair.
    checks = entries(user({}), project(stale, "local"), paths=broken)
    assert one(checks).fix == "mpmd install-hooks --settings .claude/settings.local.json"


# ---- http entries and the transport -----------------------------------------------------------

URL = "http://127.0.0.1:7720/hook"


def test_hook_entries_http_ok():
    assert entries(user(installed(port=7720)), project(None)) == [
        Check("hook entries", OK, "~/.claude/settings.json: 31 events, 29 over http to "
              "127.0.0.1:7720, 2 by the current command")]
    # Without anything known of the endpoint, the entries themselves are still checked.
    assert one(entries(user(installed(port=7799)), endpoint=None)).level == OK


def test_hook_entries_http_port_is_not_the_daemons():
    c = one(entries(user(installed(port=7721))))
    assert c.level == FAIL and c.fix == "mpmd install-hooks --transport http"
    assert c.message == ("~/.claude/settings.json: 29 events (PreToolUse, PostToolUse, "
                         "PostToolUseFailure, ...) post to 127.0.0.1:7721, but mpmd listens on "
                         "7720 (http.port): Claude Code's http hooks reach something else, or "
                         "nothing")
    down = Endpoint(7720, port=7721, token=TOKEN)  # not running: the configured port counts
    c = one(entries(user(installed(port=7721)), endpoint=down))
    assert c.level == FAIL and "but mpmd's http_port is 7720 (mpmd is not running)" in c.message
    # One event left behind on an old port, in a file otherwise current.
    data = installed(port=7720)
    data["hooks"]["Stop"][0]["hooks"][0]["url"] = "http://127.0.0.1:7000/hook"
    c = one(entries(user(data)))
    assert c.message == ("~/.claude/settings.json: Stop posts to 127.0.0.1:7000, but mpmd "
                         "listens on 7720 (http.port): Claude Code's http hooks reach something "
                         "else, or nothing")


def test_hook_entries_http_token_is_not_the_daemons():
    c = one(entries(user(installed(port=7720, token="0" * 64))))
    assert c.level == FAIL and c.fix == "mpmd install-hooks --transport http"
    assert c.message.endswith("29 events (PreToolUse, PostToolUse, PostToolUseFailure, ...) "
                              "send a token that is not the daemon's (http.token): the daemon "
                              "refuses them (401) and nothing is recorded")
    data = installed(port=7720)
    del data["hooks"]["Stop"][0]["hooks"][0]["headers"]
    c = one(entries(user(data)))
    assert c.message == ("~/.claude/settings.json: Stop sends no token (Authorization: Bearer "
                         "...): the daemon refuses them (401) and nothing is recorded")
    # No http.token yet (the daemon never ran): nothing to compare with.
    assert one(entries(user(installed(port=7720, token="0" * 64)),
                       endpoint=Endpoint(7720))).level == OK


def test_hook_entries_http_token_from_a_variable_is_not_what_install_writes():
    data = installed(port=7720)
    entry = data["hooks"]["Stop"][0]["hooks"][0]
    entry["headers"] = {"Authorization": "Bearer $MPMD_HTTP_TOKEN"}
    entry["allowedEnvVars"] = ["MPMD_HTTP_TOKEN"]
    c = one(entries(user(data)))
    assert c.level == WARN
    assert c.message.startswith("~/.claude/settings.json: Stop has an entry unlike the one "
                                "install-hooks writes")


def test_hook_entries_session_start_starts_the_daemon_next_to_http_entries():
    data = installed(port=7720)
    start = data["hooks"]["SessionStart"][0]["hooks"][0]
    assert start["command"] == f"{CMD} --start-daemon"
    assert one(entries(user(data))).level == OK
    start["command"] = CMD  # http entries, and a SessionStart that would not start it
    c = one(entries(user(data)))
    assert c.level == WARN and c.message.startswith(
        "~/.claude/settings.json: SessionStart has an entry unlike the one install-hooks writes")
    data = installed()
    data["hooks"]["SessionStart"][0]["hooks"][0]["command"] = f"{CMD} --start-daemon"
    assert one(entries(user(data))).level == WARN  # command hooks spool: no need


def test_hook_entries_a_file_holding_the_token_must_be_owner_only():
    c = one(entries(user(installed(port=7720), mode=0o644)))
    assert c.line() == ("FAIL hook entries: ~/.claude/settings.json: it holds the http hooks' "
                        "token and is 0644: group and others can read it — fix: mpmd "
                        "install-hooks --transport http")
    assert one(entries(user(installed(), mode=0o644))).level == OK  # no token in it


def test_duplicates_of_both_kinds_fail():
    data = installed()
    data["hooks"]["Stop"].append({"hooks": [{"type": "http", "url": URL}]})
    c = dr.check_duplicates([user(data)])
    assert c.message == ("Stop has 2 mpmd entries (~/.claude/settings.json ×2; a command and "
                         "an http entry: each event is stored once per working one)")
    assert c.level == FAIL
    data = installed(port=7720)
    data["hooks"]["Stop"].append({"hooks": [{"type": "http", "url": URL, "timeout": 11}]})
    c = dr.check_duplicates([user(data)])
    assert c.line() == ("WARN duplicate entries: Stop has 2 mpmd entries (~/.claude/settings.json "
                        "×2; the same endpoint) — fix: mpmd install-hooks")
    data["hooks"]["Stop"][-1]["hooks"][0]["url"] = "http://127.0.0.1:7000/hook"
    assert "different endpoints" in dr.check_duplicates([user(data)]).message
    c = dr.check_duplicates([user(installed(port=7720)), project(installed())])
    assert c.level == FAIL
    assert c.message == (
        "29 events (PreToolUse, PostToolUse, PostToolUseFailure, ...) have 2 mpmd entries "
        "(~/.claude/settings.json and .claude/settings.json; a command and an http entry: each "
        "event is stored once per working one); SessionStart has 2 mpmd entries "
        "(~/.claude/settings.json and .claude/settings.json; different commands: each event is "
        "stored once per working one); Setup has 2 mpmd entries (~/.claude/settings.json and "
        ".claude/settings.json; the same command)")
    assert c.fix == "mpmd uninstall-hooks --settings .claude/settings.json"


def transport(*files: SettingsFile, claude: ClaudeCode | None = CLAUDE,
              endpoint: Endpoint | None = UP, status: dict | None = None) -> Check:
    return dr.check_transport(files, claude, endpoint, status, HOME)


def test_transport_http_ok():
    assert transport(user(installed(port=7720))).line() == (
        "OK   hook transport: http hooks for 29 events, command hooks for SessionStart and "
        "Setup (Claude Code 2.1.328 (/usr/local/bin/claude) takes http hooks)")
    c = transport(user(installed(port=7720)), claude=ClaudeCode(error="claude is not on PATH"))
    assert c.level == OK
    assert c.message.endswith("(could not check that Claude Code takes http hooks: claude "
                              "is not on PATH)")


def test_transport_command_ok_says_when_http_would_work():
    c = transport(user(installed()))
    assert c.level == OK and c.message.startswith("command hooks for 31 events; Claude Code "
                                                  "2.1.328 (/usr/local/bin/claude) takes http "
                                                  "hooks as well")
    assert transport(user(installed()), endpoint=Endpoint(-1)).message == \
        "command hooks for 31 events"
    assert transport(user({})).level == SKIP


def test_transport_http_with_an_older_claude_code_fails():
    c = transport(user(installed(port=7720)), claude=ClaudeCode("/opt/claude", "2.1.50"))
    assert c.line() == (
        "FAIL hook transport: 29 events (PreToolUse, PostToolUse, PostToolUseFailure, ...) "
        "have http entries, but Claude Code 2.1.50 (/opt/claude) predates http hooks "
        "(2.1.63): not recorded — fix: mpmd install-hooks (it chooses command hooks where "
        "http ones cannot work)")


def test_transport_http_without_the_endpoint_fails():
    c = transport(user(installed(port=7720)), endpoint=Endpoint(-1))
    assert c.level == FAIL
    assert "have http entries, but the daemon's http endpoint is off (http_port = -1): not " \
           "recorded" in c.message
    busy = Endpoint(7720, running=True, error="cannot listen on 127.0.0.1:7720: Address "
                    "already in use")
    c = transport(user(installed(port=7720)), endpoint=busy)
    assert c.level == FAIL and "the daemon runs without its http endpoint (cannot listen" \
        in c.message


def test_transport_http_under_command_only_events_fails():
    data = installed(port=7720)
    data["hooks"]["SessionStart"] = [{"hooks": [{"type": "http", "url": URL, "timeout": 10,
                                                 "headers": {"Authorization": f"Bearer {TOKEN}"}}]}]
    c = transport(user(data))
    assert c.level == FAIL
    assert c.message == ("SessionStart has an http entry, which Claude Code never runs (it "
                         "runs command hooks only there): not recorded")
    assert one(entries(user(data))).level == OK  # said once, here


def test_transport_warns_when_the_daemon_reports_a_loss_risk():
    risk = "no service manager holds 127.0.0.1:7720: while the daemon is down ..."
    status = {"running": True, "http_loss_risk": risk}
    c = transport(user(installed(port=7720)), status=S(status))
    assert (c.level, c.message) == (WARN, risk)
    assert transport(user(installed()), status=S(status)).level == OK  # command hooks spool


# ---- duplicates and event names ---------------------------------------------------------------


def test_duplicates_ok():
    assert dr.check_duplicates([user(installed()), project(None)]).level == OK


def test_duplicates_identical_in_one_file_warn():
    data = installed()
    data["hooks"]["Stop"].append(copy.deepcopy(data["hooks"]["Stop"][0]))
    c = dr.check_duplicates([user(data)])
    assert c.line() == ("WARN duplicate entries: Stop has 2 mpmd entries "
                        "(~/.claude/settings.json ×2; the same command) — fix: mpmd install-hooks")


def test_duplicates_with_different_commands_fail():
    data = installed()
    data["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": OLD}]})
    c = dr.check_duplicates([user(data)])
    assert c.level == FAIL and "different commands" in c.message


def test_duplicates_across_files():
    c = dr.check_duplicates([user(installed()), project(installed())])
    assert c.level == WARN
    assert c.message.startswith("31 events (PreToolUse, PostToolUse, PostToolUseFailure, ...) "
                                "have 2 mpmd "
                                "entries (~/.claude/settings.json and .claude/settings.json; "
                                "the same command)")
    assert c.fix == "mpmd uninstall-hooks --settings .claude/settings.json"


def test_event_names_ok():
    c = dr.check_event_names([user(installed())])
    assert c.line() == ("OK   event names: mpmd registers 31 of the 33 documented event types "
                        "(not WorktreeCreate, WorktreeRemove) and nothing else")


def test_event_names_unknown_name_warns():
    data = installed()
    data["hooks"]["PreToolCall"] = [{"hooks": [{"type": "command", "command": CMD}]}]
    c = dr.check_event_names([user(data)])
    assert c.level == WARN and c.fix == "mpmd install-hooks"
    assert "under PreToolCall, which is not one of the 33 documented event types" in c.message


def test_event_names_worktree_entry_fails():
    data = installed()
    data["hooks"]["WorktreeCreate"] = [{"hooks": [{"type": "command", "command": CMD}]}]
    c = dr.check_event_names([user({}), project(data)])
    assert c.level == FAIL
    assert c.fix == "mpmd install-hooks --settings .claude/settings.json"


def test_event_names_mpmd_registering_an_undocumented_name_warns():
    c = dr.check_event_names([user(installed())],
                             registered=(*INSTALLED_EVENTS, "Brandnew"))
    assert c.level == WARN and "differs from the 33 documented ones" in c.message


# ---- hook copy, spool, ring, disk, retention, index, viewer -----------------------------------


def test_hook_copy():
    d = "~/.local/state/mpmd/hook/mpm_hook"
    assert dr.check_hook_copy(dr.HookCopyFacts(True), d).level == OK
    assert dr.check_hook_copy(dr.HookCopyFacts(False), d).level == WARN
    c = dr.check_hook_copy(dr.HookCopyFacts(True, ("hook.py",)), d)
    assert c.level == WARN and "(hook.py differs)" in c.message


def test_spool():
    S = dr.SpoolFacts
    assert dr.check_spool(S(), True) == Check("spool backlog", OK, "empty")
    assert dr.check_spool(S(3, 1.0), True).level == OK
    down = dr.check_spool(S(1, 30.0), False)
    assert down.line() == ("WARN spool backlog: 1 event waiting, oldest 30 s old (taken in "
                           "when mpmd starts) — fix: mpmd start")
    assert dr.check_spool(S(5000, 10.0), True).level == WARN
    stuck = dr.check_spool(S(2, 3600.0), True, "~/log/mpmd.log")
    assert stuck.level == FAIL and "not taken in although mpmd runs" in stuck.message
    assert stuck.fix.startswith("see ~/log/mpmd.log")


def test_ring():
    assert dr.check_ring(None).level == SKIP
    status = {"running": True, "ring_capacity_bytes": 64 << 20}
    assert dr.check_ring(S({**status, "ring_used_bytes": 8 << 20})).line() == \
        "OK   ring usage: 12 % used (8.0 MiB of 64.0 MiB)"
    c = dr.check_ring(S({**status, "ring_used_bytes": 60 << 20}))
    assert c.level == WARN and c.message.startswith("94 % used")


def test_disk():
    G = 1 << 30
    assert dr.check_disk(None, 0, G, 64 << 20).level == SKIP
    assert dr.check_disk(dr.DiskFacts(50 * G, 100 * G), 10 << 20, G, 64 << 20).line() == \
        "OK   journal disk space: 50.0 GiB free, journal 10.0 MiB (limit 1.0 GiB)"
    room = dr.check_disk(dr.DiskFacts(G // 2, 100 * G), 0, G, 64 << 20)
    assert room.level == WARN and "it may grow by 1.1 GiB before retention trims it" in room.message
    assert dr.check_disk(dr.DiskFacts(50 * G, 100 * G), 0, G, 1, journal_errors=3).level == WARN
    full = dr.check_disk(dr.DiskFacts(10 << 20, 100 * G), 0, G, 64 << 20)
    assert full.level == FAIL and full.message.startswith("only 10.0 MiB free")


def test_retention():
    assert dr.check_retention(30, 1 << 30).line() == (
        "OK   retention: closed segments deleted when older than 30 days or past 1.0 GiB in all")
    assert dr.check_retention(None, 1 << 30).level == OK
    assert dr.check_retention(0, None).line() == (
        "WARN retention: no limit: closed journal segments are never deleted — fix: set "
        "retention_days or retention_bytes in config.toml")


def test_index():
    assert dr.check_index(None).level == SKIP
    status = {"running": True, "journal_last_seq": 500, "index_worker_pid": 77}
    assert dr.check_index(S({**status, "index_last_seq": 500})).line() == \
        "OK   search index: up to date (worker pid 77)"
    assert dr.check_index(S({**status, "index_last_seq": 490})).message == \
        "10 events behind the journal (worker pid 77)"
    behind = dr.check_index(S({**status, "journal_last_seq": 50_000, "index_last_seq": 1}))
    assert behind.level == WARN
    dead = dr.check_index(S({**status, "index_last_seq": 400, "index_worker_pid": None,
                           "counters": {"index_worker_restarts": 4}}))
    assert dead.level == FAIL and "its worker is not running (restarted 4 times)" in dead.message


def test_viewer_with_the_daemon_running():
    up = {"running": True, "viewer_url": "http://127.0.0.1:7710/#token=x", "viewer_port": 7710}
    assert dr.check_viewer(7710, S(up), None).line() == "OK   viewer port: 127.0.0.1:7710"
    assert dr.check_viewer(0, S(up), None).level == OK
    moved = {**up, "viewer_port": 7711}
    taken = dr.check_viewer(7710, S(moved), dr.PortProbe(7710, False, "pid 42 (nginx)"))
    assert taken.line() == ("WARN viewer port: port 7710 is taken by pid 42 (nginx): the viewer "
                            "is on 7711 instead (mpmd open knows) — fix: free the port, or set "
                            "viewer_port in config.toml")
    free_now = dr.check_viewer(7710, S(moved), dr.PortProbe(7710, True))
    assert free_now.level == WARN and free_now.fix == "mpmd stop && mpmd start to move it " \
                                                      "back to 7710"
    none = dr.check_viewer(7710, S({"running": True, "viewer_url": None,
                                  "viewer_error": "ports 7710-7719 are all taken"}), None)
    assert none.level == WARN and "ports 7710-7719 are all taken" in none.message


def test_viewer_with_the_daemon_down():
    assert dr.check_viewer(7710, None, dr.PortProbe(7710, True)).level == OK
    assert dr.check_viewer(0, None, None).level == OK
    taken = dr.check_viewer(7710, None, dr.PortProbe(7710, False))
    assert taken.line() == ("WARN viewer port: port 7710 is taken by another process: the "
                            "viewer will take the next free one up to 7719 — fix: free the "
                            "port, or set viewer_port in config.toml")
    assert dr.check_viewer(80, None, dr.PortProbe(80, False, error="Permission denied")
                           ).level == SKIP


def test_run_checks_without_a_daemon_skips_what_needs_it(tmp_path):
    s = config.Settings(runtime_dir=tmp_path, state_dir=tmp_path, config_dir=tmp_path)
    facts = dr.Facts(settings=s, home=HOME, uid=os.getuid(), installed_version="0.1.0",
                     status=None, settings_files=(user(installed()),), target=TARGET,
                     paths=PATHS, disk=dr.DiskFacts(50 << 30, 100 << 30))
    levels = {c.name: c.level for c in dr.run_checks(facts)}
    assert levels == {"config": OK, "daemon": FAIL, "permissions": OK, "hook entries": OK,
                      "duplicate entries": OK, "event names": OK, "hook transport": OK,
                      "hook copy": WARN,
                      "spool backlog": OK, "ring usage": SKIP, "background tasks": SKIP,
                      "journal disk space": OK,
                      "retention": OK, "search index": SKIP, "viewer port": SKIP,
                      "policy": SKIP, "forwarders": SKIP, "transcripts": SKIP,
                      "notifications": SKIP}


def test_notifications_check():
    assert dr.check_notify(['notify "a": on: x'], None).level == FAIL
    assert dr.check_notify([], None).level == SKIP
    none = dr.check_notify([], S({"running": True}))
    assert none.level == OK and "mpmd notify init" in none.message
    ok = S({"running": True, "notify": {
        "worker_pid": 7, "running": True, "rules": {"a": {"state": "ok"}},
        "targets": {"a#1": {"url": "ntfy://ntfy.sh/…", "state": "ok", "sent": 3}}}})
    assert dr.check_notify([], ok).line() == "OK   notifications: 1 rules, 1 targets, 3 sent"
    failing = S({"running": True, "notify": {
        "worker_pid": 7, "running": True, "rules": {"a": {"state": "ok"}},
        "targets": {"a#1": {"url": "ntfy://ntfy.sh/…", "state": "retrying", "queued": 2,
                            "last_error": "503 Service Unavailable"}}}})
    check = dr.check_notify([], failing)
    assert check.level == WARN
    assert "a#1 (ntfy://ntfy.sh/…): 503 Service Unavailable, 2 waiting" in check.message
    down = S({"running": True, "notify": {"worker_pid": None, "running": False,
                                          "last_error": "stopped by an internal error"}})
    assert dr.check_notify([], down).level == FAIL


# ---- gathering --------------------------------------------------------------------------------


def test_settings_files_skip_the_project_files_when_they_are_the_user_file(tmp_path):
    user_file = tmp_path / ".claude" / "settings.json"
    scopes = [scope for scope, _ in dr.settings_files(user_file, tmp_path)]
    assert scopes == ["user", "local"]
    assert len(dr.settings_files(user_file, tmp_path / "app")) == 3


def test_read_settings_file(tmp_path):
    path = tmp_path / "settings.json"
    assert dr.read_settings_file("user", path, "s") == SettingsFile("user", str(path), "s")
    path.write_text('{"hooks": {}}')
    assert dr.read_settings_file("user", path, "s").data == {"hooks": {}}
    path.write_text('{"hooks": \n')
    bad = dr.read_settings_file("user", path, "s")
    assert bad.data is None and bad.error is not None
    assert bad.error.startswith("cannot read it: 2:1: invalid JSON")


def test_path_state(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("")
    assert dr.path_state(str(script)) == "file"
    assert dr.path_state(sys.executable) == "executable"
    assert dr.path_state(str(tmp_path)) == "dir"
    assert dr.path_state(str(tmp_path / "nope")) == "missing"
    assert dr.path_state("sh") == "executable"
    assert dr.path_state("no-such-command-here") == "missing"


def test_gather_modes_and_spool(tmp_path):
    s = config.Settings(runtime_dir=tmp_path, state_dir=tmp_path, config_dir=tmp_path)
    (tmp_path / "journal").mkdir(mode=0o700)
    seg = tmp_path / "journal" / "0000000000000001-20260101.jsonl"
    seg.write_bytes(b"")
    os.chmod(seg, 0o644)
    os.chmod(tmp_path, 0o700)
    modes = {m.display: m for m in dr.gather_modes(s, str(tmp_path))}
    assert modes["~"].rule == "private"  # MPMD_HOME: the config folder too, the stricter rule
    assert modes[f"~/journal/{seg.name}"].mode == 0o644
    assert dr.check_permissions(list(modes.values()), os.getuid()).fix == \
        f"chmod 600 ~/journal/{seg.name}"
    spool = tmp_path / "spool"
    spool.mkdir()
    assert dr.gather_spool(spool, 1000.0) == dr.SpoolFacts()
    for name, mtime in (("a.frame", 400), ("b.frame", 900), ("c.tmp", 100)):
        (spool / name).write_bytes(b"")
        os.utime(spool / name, (mtime, mtime))
    assert dr.gather_spool(spool, 1000.0) == dr.SpoolFacts(2, 600.0)


def test_gather_hook_copy(tmp_path):
    source = tmp_path / "src"
    copy_dir = tmp_path / "copy"
    source.mkdir()
    copy_dir.mkdir()
    assert not dr.gather_hook_copy(copy_dir, source).exists
    for name in ("__main__.py", "hook.py"):
        (source / name).write_text("new")
        (copy_dir / name).write_text("new")
    assert dr.gather_hook_copy(copy_dir, source) == dr.HookCopyFacts(True)
    (copy_dir / "hook.py").write_text("old")
    assert dr.gather_hook_copy(copy_dir, source).differs == ("hook.py",)


def test_probe_port_finds_a_listener():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = dr.probe_port(port)
        assert not probe.free and probe.error is None
        if sys.platform.startswith("linux"):
            assert probe.holder is not None and probe.holder.startswith(f"pid {os.getpid()} (")
    assert dr.probe_port(port).free


# ---- end to end -------------------------------------------------------------------------------


@pytest.fixture
def user_home():
    path = short_tempdir()
    (path / "project").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


# Small retention limits, so the disk check does not depend on this machine's free space
# beyond NEARLY_FULL_BYTES; any free viewer port, as the test daemon uses.
# No Claude Code to be found (whatever this machine has on PATH): install-hooks' auto then
# writes command entries, and the tests of http entries ask for them.
SMALL = {"MPMD_VIEWER_PORT": "0", "MPMD_RETENTION_BYTES": str(4 << 20),
         "MPMD_SEGMENT_BYTES": str(1 << 20), "MPMD_CLAUDE": "/nonexistent/claude"}


def cli_env(home: Path, user_home: Path) -> dict[str, str]:
    return env_for(home, HOME=str(user_home), **SMALL)


def cli(home: Path, user_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mpmd ARGS` run from the project folder, with HOME in the temporary folder."""
    return subprocess.run([sys.executable, "-m", "mpmd", *args], capture_output=True, text=True,
                          env=cli_env(home, user_home), cwd=user_home / "project", timeout=60)


def start_daemon(home: Path, user_home: Path) -> Daemon:
    return Daemon(home, HOME=str(user_home), **SMALL).start()


def doctor(home: Path, user_home: Path, *args: str) -> tuple[int, list[str]]:
    result = cli(home, user_home, "doctor", *args)
    assert result.stderr == ""
    return result.returncode, result.stdout.splitlines()


def by_name(lines: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in lines[:-1]:
        out.setdefault(line[5:].split(":", 1)[0], []).append(line)
    return out


def daemon_status(home: Path) -> dict:
    return json.loads(subprocess.run([sys.executable, "-m", "mpmd", "status", "--json"],
                                     capture_output=True, text=True, env=env_for(home),
                                     timeout=60).stdout)


def settings_path(user_home: Path) -> Path:
    return user_home / ".claude" / "settings.json"


def test_doctor_end_to_end(home: Path, user_home: Path):
    daemon = start_daemon(home, user_home)
    try:
        assert cli(home, user_home, "install-hooks").returncode == 0
        code, lines = doctor(home, user_home)
        assert code == 0, lines
        assert all(line.startswith("OK   ") for line in lines[:-1]), lines
        assert lines[-1] == "all 19 checks OK"
        checks = by_name(lines)
        assert checks["daemon"][0].startswith(f"OK   daemon: reachable (pid {daemon.pid}, up ")
        assert checks["hook entries"] == [
            "OK   hook entries: ~/.claude/settings.json: 31 events, current command"]
        report = json.loads(cli(home, user_home, "doctor", "--json").stdout)
        assert report["ok"] is True and len(report["checks"]) == 19

        # Break things: a folder others can read, an entry whose interpreter is gone (a
        # removed virtualenv), a duplicated entry, the daemon stopped with an event spooled.
        os.chmod(home / "journal", 0o755)
        data = json.loads(settings_path(user_home).read_text())
        pre = data["hooks"]["PreToolUse"][0]["hooks"][0]
        pre["command"] = pre["command"].replace(sys.executable,
                                                str(user_home / "old-venv/bin/python"), 1)
        data["hooks"]["Stop"].append(copy.deepcopy(data["hooks"]["Stop"][0]))
        settings_path(user_home).write_text(json.dumps(data))
    finally:
        assert daemon.stop() == 0
    assert run_hook(home, b'{"hook_event_name": "Stop", "session_id": "s1"}').returncode == 0

    code, lines = doctor(home, user_home)
    assert code == 1
    checks = by_name(lines)
    assert checks["daemon"] == [
        "FAIL daemon: not running (hooks spool events to disk until it starts) — fix: mpmd start"]
    assert checks["permissions"] == [
        f"FAIL permissions: {home}/journal is 0755: group and others can list it "
        f"— fix: chmod 700 {home}/journal"]
    assert checks["hook entries"] == [
        "FAIL hook entries: ~/.claude/settings.json: PreToolUse runs ~/old-venv/bin/python, "
        "which does not exist — fix: mpmd install-hooks"]
    assert checks["duplicate entries"] == [
        "WARN duplicate entries: Stop has 2 mpmd entries (~/.claude/settings.json ×2; the same "
        "command) — fix: mpmd install-hooks"]
    spool_line = checks["spool backlog"][0]
    assert spool_line.startswith("WARN spool backlog: 1 event waiting, oldest ")
    assert spool_line.endswith(" (taken in when mpmd starts) — fix: mpmd start")
    assert checks["ring usage"] == ["SKIP ring usage: mpmd is not running"]
    assert checks["search index"] == ["SKIP search index: mpmd is not running"]
    assert lines[-1] == "3 FAIL, 2 WARN, 6 SKIP of 19 checks"
    report = json.loads(cli(home, user_home, "doctor", "--json").stdout)
    assert report["ok"] is False
    assert [c["name"] for c in report["checks"] if c["level"] == FAIL] == [
        "daemon", "permissions", "hook entries"]

    # The fixes doctor printed: a chmod (which install-hooks does too), install-hooks, start.
    fixes = {line.split(" — fix: ", 1)[1] for line in lines if " — fix: " in line}
    assert fixes == {"mpmd start", f"chmod 700 {home}/journal", "mpmd install-hooks"}
    repaired = cli(home, user_home, "install-hooks")
    assert repaired.returncode == 0 and "updated 2" in repaired.stdout
    assert "owner-only again: " in repaired.stdout
    assert "journal 0755 -> 0700" in repaired.stdout
    daemon = start_daemon(home, user_home)
    try:
        code, lines = doctor(home, user_home)
        assert code == 0, lines
        assert lines[-1] == "all 19 checks OK"
        assert by_name(lines)["spool backlog"] == ["OK   spool backlog: empty"]
    finally:
        daemon.stop()


def test_install_hooks_repairs_a_stale_install_after_an_upgrade(home: Path, user_home: Path):
    """Settings written by an older mpmd whose virtualenv and state folder are gone, sharing
    the file with the user's own hook, plus an entry under an event mpmd no longer
    registers."""
    gone = user_home / "old"
    old = f"{gone}/venv/bin/python -I -S {gone}/state/hook/mpm_hook/__main__.py " \
          f"--runtime {home} --state {home}"
    data = install({"model": "opus", "hooks": {"PreToolUse": [USER_HOOK]}}, old)[0]
    data["hooks"]["WorktreeRemove"] = [{"hooks": [{"type": "command", "command": old}]}]
    settings_path(user_home).parent.mkdir()
    settings_path(user_home).write_text(json.dumps(data))
    daemon = start_daemon(home, user_home)
    try:
        code, lines = doctor(home, user_home)
        assert code == 1
        checks = by_name(lines)
        assert checks["hook entries"] == [
            "FAIL hook entries: ~/.claude/settings.json: 32 events (PreToolUse, PostToolUse, "
            "PostToolUseFailure, ...) run ~/old/venv/bin/python and ~/old/state/hook/mpm_hook/"
            "__main__.py, which do not exist — fix: mpmd install-hooks"]
        assert checks["event names"][0].startswith(
            "FAIL event names: ~/.claude/settings.json has an mpmd entry under WorktreeRemove")
        assert checks["hook copy"][0].startswith("OK   hook copy:")  # mpmd start made it
        assert cli(home, user_home, "install-hooks").returncode == 0
        code, lines = doctor(home, user_home)
        assert code == 0, lines
        after = json.loads(settings_path(user_home).read_text())
        assert after["model"] == "opus" and after["hooks"]["PreToolUse"][0] == USER_HOOK
        assert "WorktreeRemove" not in after["hooks"]
    finally:
        daemon.stop()


def test_entries_in_a_project_file(home: Path, user_home: Path):
    """An old install in the project's .claude/settings.json next to the current one in the
    user file: doctor names the project file and the command that repairs it."""
    daemon = start_daemon(home, user_home)
    try:
        assert cli(home, user_home, "install-hooks").returncode == 0
        assert cli(home, user_home, "install-hooks", "--settings",
                   ".claude/settings.json").returncode == 0
        code, lines = doctor(home, user_home)
        assert code == 0  # identical commands: Claude Code runs them once
        assert by_name(lines)["duplicate entries"] == [
            "WARN duplicate entries: 31 events (PreToolUse, PostToolUse, PostToolUseFailure, ...) "
            "have 2 mpmd entries (~/.claude/settings.json and .claude/settings.json; the same "
            "command) — fix: mpmd uninstall-hooks --settings .claude/settings.json"]
        project_file = user_home / "project" / ".claude" / "settings.json"
        data = json.loads(project_file.read_text())
        stop = data["hooks"]["Stop"][0]["hooks"][0]
        stop["command"] = stop["command"].replace(f"--state {home}", "--state /elsewhere")
        project_file.write_text(json.dumps(data))
        code, lines = doctor(home, user_home)
        assert code == 1
        assert by_name(lines)["hook entries"] == [
            "OK   hook entries: ~/.claude/settings.json: 31 events, current command",
            f"FAIL hook entries: .claude/settings.json: Stop sends events to {home} + "
            f"/elsewhere, not to this mpmd's {home} — fix: mpmd uninstall-hooks --settings "
            ".claude/settings.json"]
        assert cli(home, user_home, "uninstall-hooks", "--settings",
                   ".claude/settings.json").returncode == 0
        code, lines = doctor(home, user_home)
        assert code == 0 and lines[-1] == "all 19 checks OK", lines
        # --project elsewhere: the project's files are named by their full path.
        code, lines = doctor(home, user_home, "--project", str(user_home))
        assert code == 0
    finally:
        daemon.stop()


def test_doctor_with_http_entries(home: Path, user_home: Path):
    """`install-hooks --transport http` against a real daemon, then what doctor says when the
    daemon comes back on another port with another token and the file was loosened, and
    install-hooks repairing all of it."""
    daemon = start_daemon(home, user_home)
    try:
        port = daemon_status(home)["http_port"]
        shown = cli(home, user_home, "status").stdout.splitlines()
        assert f"  http hooks                 http://127.0.0.1:{port}/hook" in shown
        out = cli(home, user_home, "install-hooks", "--transport", "http")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("transport: http, as asked (--transport http)\n"
                                     f"  29 events post to http://127.0.0.1:{port}/hook; "
                                     "SessionStart and Setup stay command hooks")
        assert (settings_path(user_home).stat().st_mode & 0o777) == 0o600
        token = (home / "http.token").read_text().strip()
        assert f"Bearer {token}" in settings_path(user_home).read_text()
        code, lines = doctor(home, user_home)
        assert code == 0, lines
        checks = by_name(lines)
        assert checks["hook entries"] == [
            "OK   hook entries: ~/.claude/settings.json: 31 events, 29 over http to "
            f"127.0.0.1:{port}, 2 by the current command"]
        # No service manager holds the port: the daemon says what a stop would lose.
        risk = daemon_status(home)["http_loss_risk"]
        assert checks["hook transport"] == [f"WARN hook transport: {risk} — fix: mpmd service "
                                            "install"]
        assert [line[:4] for line in lines[:-1] if not line.startswith("OK")] == ["WARN"]
    finally:
        assert daemon.stop() == 0

    # Another port (http_port = 0) and, its token file gone, another token; and a file
    # others can read.
    (home / "http.token").unlink()
    settings_path(user_home).chmod(0o644)
    daemon = start_daemon(home, user_home)
    try:
        moved = daemon_status(home)["http_port"]
        assert moved != port
        code, lines = doctor(home, user_home)
        assert code == 1
        (line,) = by_name(lines)["hook entries"]
        assert line == (
            "FAIL hook entries: ~/.claude/settings.json: 29 events (PreToolUse, PostToolUse, "
            f"PostToolUseFailure, ...) post to 127.0.0.1:{port}, but mpmd listens on {moved} "
            "(http.port): Claude Code's http hooks reach something else, or nothing; 29 events "
            "(PreToolUse, PostToolUse, PostToolUseFailure, ...) send a token that is not the "
            "daemon's (http.token): the daemon refuses them (401) and nothing is recorded; it "
            "holds the http hooks' token and is 0644: group and others can read it "
            "— fix: mpmd install-hooks --transport http")
        out = cli(home, user_home, "install-hooks", "--transport", "http")
        assert "updated 29" in out.stdout
        assert "~/.claude/settings.json: made 0600 (it was 0644): it holds the http hooks' " \
               "token" in out.stdout
        code, lines = doctor(home, user_home)
        assert code == 0 and by_name(lines)["hook entries"][0].startswith("OK"), lines
        again = cli(home, user_home, "install-hooks", "--transport", "http")
        assert again.stdout.endswith("hooks already installed, nothing changed\n")

        # And back to command hooks: the same events, in place, no token left.
        out = cli(home, user_home, "install-hooks", "--transport", "command")
        assert out.stdout.startswith("transport: command, as asked (--transport command)\n")
        assert "updated 30" in out.stdout  # and SessionStart no longer starts the daemon
        assert "Bearer" not in settings_path(user_home).read_text()
        code, lines = doctor(home, user_home)
        assert code == 0 and lines[-1] == "all 19 checks OK", lines
        assert by_name(lines)["hook transport"] == ["OK   hook transport: command hooks for 31 "
                                                    "events"]
        assert cli(home, user_home, "uninstall-hooks").returncode == 0
        assert "hooks" not in json.loads(settings_path(user_home).read_text())
    finally:
        daemon.stop()


def test_install_hooks_says_what_it_chose_and_refuses_http_where_it_cannot_work(
        home: Path, user_home: Path):
    out = cli(home, user_home, "install-hooks")  # no Claude Code to be found (SMALL)
    assert out.returncode == 0
    assert out.stdout.startswith(
        "transport: command (auto), because Claude Code's version is unknown: "
        "MPMD_CLAUDE=/nonexistent/claude is not an executable file; command hooks work with "
        "every version, http hooks need 2.1.63 or later\n"
        "  note: for http hooks: --transport http if the Claude Code you run is 2.1.63 or "
        "later (or MPMD_CLAUDE=<its path>)\n")
    written = settings_path(user_home).read_bytes()
    off = subprocess.run([sys.executable, "-m", "mpmd", "install-hooks", "--transport", "http"],
                         capture_output=True, text=True, cwd=user_home / "project",
                         env={**cli_env(home, user_home), "MPMD_HTTP_PORT": "-1"}, timeout=60)
    assert off.returncode == 1
    assert off.stderr == ("Error: not installing http hooks: the daemon's http endpoint is off "
                          "(http_port = -1) (--transport command works with every Claude "
                          "Code)\n")
    shared = cli(home, user_home, "install-hooks", "--transport", "http", "--settings",
                 ".claude/settings.json")
    assert shared.returncode == 1
    assert ".claude/settings.json is a project's shared settings file (usually committed)" \
        in shared.stderr
    assert not (user_home / "project" / ".claude").exists()
    assert settings_path(user_home).read_bytes() == written


def test_install_hooks_http_before_the_daemon_ever_ran(home: Path, user_home: Path):
    """The token is made by install-hooks, and the daemon then keeps it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    env = {**cli_env(home, user_home), "MPMD_HTTP_PORT": port}
    out = subprocess.run([sys.executable, "-m", "mpmd", "install-hooks", "--transport", "http"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"  note: mpmd is not running: until it listens on 127.0.0.1:{port}, Claude Code " \
           "reports each http hook as failed and the event is lost" in out.stdout
    token_file = home / "http.token"
    token = token_file.read_text().strip()
    assert (token_file.stat().st_mode & 0o777) == 0o600
    assert f"Bearer {token}" in settings_path(user_home).read_text()
    with Daemon(home, HOME=str(user_home), MPMD_HTTP_PORT=port, **SMALL):
        assert daemon_status(home)["http_port"] == int(port)
        _code, lines = doctor(home, user_home)
        assert by_name(lines)["hook entries"] == [
            "OK   hook entries: ~/.claude/settings.json: 31 events, 29 over http to "
            f"127.0.0.1:{port}, 2 by the current command"]
    assert token_file.read_text().strip() == token


def test_the_status_line_of_the_http_endpoint():
    from mpmd.cli.main import _http_line

    assert _http_line(S({"http_url": "http://127.0.0.1:7720/hook", "http_refused": {}})) == \
        "http://127.0.0.1:7720/hook"
    assert _http_line(S({"http_url": "http://127.0.0.1:7720/hook",
                         "http_refused": {"token_wrong": 3, "host": 1}})) == \
        "http://127.0.0.1:7720/hook  (4 requests refused: mpmd status --json)"
    assert _http_line(S({"http_url": None, "http_error": "off (http_port = -1)"})) == \
        "not available: off (http_port = -1)"
    assert _http_line(S({})) == "not available: not started"


def test_doctor_with_a_bad_config_still_checks_the_rest(home: Path, user_home: Path):
    (home / "config.toml").write_text("ring_bytes = 'lots'\n")
    code, lines = doctor(home, user_home)
    assert code == 1
    checks = by_name(lines)
    assert checks["config"][0].startswith("FAIL config: ring_bytes = 'lots' (from ")
    assert checks["daemon"][0].startswith("FAIL daemon: not running")
    assert checks["retention"][0].startswith("OK   retention:")


def test_the_policy_check() -> None:
    assert dr.check_policy(None, "/home/you").level == SKIP
    none = dr.check_policy({"file": "/home/you/.config/mpmd/policy.toml", "state": "none"},
                           "/home/you")
    assert (none.level, none.message) == (OK, "none: mpmd only observes (no decisions)")
    active = dr.check_policy({"file": "/home/you/.config/mpmd/policy.toml", "state": "active",
                              "rules": 10}, "/home/you")
    assert (active.level, active.message) == (OK, "10 rules in ~/.config/mpmd/policy.toml")
    bad = dr.check_policy({"file": "/home/you/.config/mpmd/policy.toml", "state": "invalid",
                           "error": "rule 2 (x): action: 'alow' is not one of ..."}, "/home/you")
    assert bad.level == FAIL and "rule 2 (x)" in bad.message and "policy check" in bad.fix


def test_the_forwarders_check() -> None:
    running = {"running": True}
    team = {"kind": "webhook", "url": "https://x"}
    assert dr.check_forwarders([], None).level == SKIP
    assert dr.check_forwarders([], S({**running, "forward": {}})).message == "none configured"
    bad = dr.check_forwarders(['forward "team": url: must be http or https'], S(running))
    assert bad.level == FAIL and 'forward "team"' in bad.message
    ok = dr.check_forwarders([], S({**running, "forward": {
        "team": {**team, "state": "ok", "backlog": 0}}}))
    assert (ok.level, ok.message) == (OK, "team up to date")
    down = dr.check_forwarders([], S({**running, "forward": {
        "team": {**team, "state": "retrying", "backlog": 600,
                 "last_error": "503 Service Unavailable"}}}))
    assert down.level == WARN and "team (retrying: 503 Service Unavailable)" in down.message
    behind = dr.check_forwarders([], S({**running, "forward": {
        "team": {**team, "state": "ok", "backlog": 20_000}}}))
    assert behind.level == WARN and "backlog 20000" in behind.message
