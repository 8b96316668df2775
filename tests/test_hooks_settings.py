"""Tests for mpmd.ops.hooks_settings: merging our hook into Claude Code settings files."""

from __future__ import annotations

import copy
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.utils import examples

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the package is not necessarily installed in the venv
    sys.path.insert(0, str(ROOT))

from mpmd.ops import hooks_settings as hs  # noqa: E402
from mpmd.ops.hooks_settings import (  # noqa: E402
    COMMAND_ONLY_EVENTS,
    INSTALLED_EVENTS,
    KNOWN_EVENTS,
    TOOL_EVENTS,
    Changes,
    ClaudeCode,
    Endpoint,
    HttpHook,
    SettingsError,
    apply,
    choose_transport,
    find_ours,
    install,
    is_ours,
    load_settings,
    save_settings,
    uninstall,
)

CMD = (
    "/new/venv/bin/python -I -S /new/state/hook/mpm_hook"
    " --runtime /run/user/1000/mpmd --state /new/state"
)
STALE = "/old/venv/bin/python -I -S /old/state/hook/mpm_hook --runtime /old/run --state /old/state"
CONSOLE = "mpm-hook --runtime /old/run --state /old/state"

TOKEN = "a" * 64
HTTP = HttpHook(7720, TOKEN)
URL = "http://127.0.0.1:7720/hook"
# http entries of ours an older install (another port, another token) or a hand left behind
OLD_HTTP = {"type": "http", "url": "http://127.0.0.1:7799/hook", "timeout": 10,
            "headers": {"Authorization": "Bearer " + "b" * 64}}
BARE_HTTP = {"type": "http", "url": URL}
# Events that take http hooks: all the installed ones but SessionStart and Setup.
HTTP_EVENTS = tuple(e for e in INSTALLED_EVENTS if e not in COMMAND_ONLY_EVENTS)
# Next to http entries, SessionStart's command starts the daemon when it finds none.
CMD_START = CMD + " --start-daemon"

BASH_GUARD = {
    "matcher": "Bash",
    "hooks": [{"type": "command", "command": "~/.claude/hooks/guard-bash.sh", "timeout": 5}],
}
NOTIFIER = {"type": "command", "command": "notify-send 'Claude is done'", "async": True}
USER_WORKTREE = {"hooks": [{"type": "command", "command": "~/bin/make-worktree.sh"}]}


def user_settings() -> dict:
    """A user's settings file with their own hooks and keys, none of ours."""
    return {
        "$schema": "https://json.schemastore.org/claude-code-settings.json",
        "model": "opus",
        "permissions": {
            "allow": ["Bash(git status)", "Bash(npm run test:*)"],
            "deny": ["Read(./.env)"],
            "defaultMode": "acceptEdits",
        },
        "env": {"BASH_DEFAULT_TIMEOUT_MS": "60000", "GREETING": "héllo ✓"},
        "hooks": {
            "PreToolUse": [copy.deepcopy(BASH_GUARD)],
            "Stop": [{"hooks": [dict(NOTIFIER)]}],
            "WorktreeCreate": [copy.deepcopy(USER_WORKTREE)],
        },
        "statusLine": {"type": "command", "command": "~/.claude/statusline.sh", "padding": 0},
        "includeCoAuthoredBy": False,
    }


def installed_by_old_version() -> dict:
    """user_settings() after an older mpmd install: a stale path sharing the user's Stop group,
    a duplicate console-script entry, and an event we no longer register."""
    s = user_settings()
    s["hooks"]["PreToolUse"].append(
        {"matcher": "*", "hooks": [{"type": "command", "command": STALE, "timeout": 10}]}
    )
    s["hooks"]["PreToolUse"].append(
        {"matcher": "*", "hooks": [{"type": "command", "command": CONSOLE}]}
    )
    s["hooks"]["Stop"][0]["hooks"].append({"type": "command", "command": STALE, "timeout": 10})
    s["hooks"]["WorktreeRemove"] = [{"hooks": [{"type": "command", "command": STALE}]}]
    s["hooks"]["WorktreeCreate"][0]["hooks"].append({"type": "command", "command": STALE})
    return s


def dump(obj: object) -> str:
    """Serialisation that is sensitive to key order (dict == is not)."""
    return json.dumps(obj, indent=2, ensure_ascii=False)


# --- events and marking ------------------------------------------------------------------------


def test_event_lists():
    assert len(KNOWN_EVENTS) == 33
    assert len(set(KNOWN_EVENTS)) == 33
    assert "WorktreeCreate" in KNOWN_EVENTS and "WorktreeRemove" in KNOWN_EVENTS
    assert set(INSTALLED_EVENTS) == set(KNOWN_EVENTS) - {"WorktreeCreate", "WorktreeRemove"}
    assert len(INSTALLED_EVENTS) == 31
    assert {"PreModelSwitch", "PostModelSwitch"} <= set(INSTALLED_EVENTS)
    assert list(INSTALLED_EVENTS) == [e for e in KNOWN_EVENTS if e in INSTALLED_EVENTS]
    assert TOOL_EVENTS.issubset(INSTALLED_EVENTS)


@pytest.mark.parametrize(
    ("entry", "ours"),
    [
        ({"type": "command", "command": CMD}, True),
        ({"type": "command", "command": STALE, "timeout": 10}, True),
        ({"type": "command", "command": CONSOLE, "async": True}, True),
        ({"type": "command", "command": "/usr/local/bin/mpm-hook"}, True),
        ({"type": "command", "command": "~/.claude/hooks/guard-bash.sh"}, False),
        ({"type": "command", "command": "mpm hook"}, False),
        ({"type": "prompt", "prompt": "mpm_hook"}, False),
        ({"type": "command", "command": ["mpm_hook"]}, False),
        ({"type": "command"}, False),
        ({"type": "http", "url": URL}, True),
        ({"type": "http", "url": "http://127.0.0.1:1/hook", "headers": {}}, True),
        ({"type": "http", "url": "http://127.0.0.1:65535/hook", "timeout": 600}, True),
        ({"type": "http", "url": "http://localhost:7720/hook"}, False),
        ({"type": "http", "url": "https://127.0.0.1:7720/hook"}, False),
        ({"type": "http", "url": "http://127.0.0.1:7720/hooks"}, False),
        ({"type": "http", "url": "http://127.0.0.1:7720/hook/"}, False),
        ({"type": "http", "url": "http://127.0.0.1:7720/hook?x=1"}, False),
        ({"type": "http", "url": "http://127.0.0.1:0/hook"}, False),
        ({"type": "http", "url": "http://127.0.0.1:70000/hook"}, False),
        ({"type": "http", "url": "http://127.0.0.1:/hook"}, False),
        ({"type": "http", "url": "http://127.0.0.12:7720/hook"}, False),
        ({"type": "http", "url": "http://127.0.0.1:7720/hook", "command": "x"}, True),
        ({"type": "http", "command": CMD}, False),  # an http entry is ours by its url
        ({"type": "command", "url": URL}, False),
        ({"type": "http", "url": ["http://127.0.0.1:7720/hook"]}, False),
        ("mpm_hook", False),
        (None, False),
    ],
)
def test_is_ours(entry, ours):
    assert is_ours(entry) is ours


# --- install -----------------------------------------------------------------------------------


def test_install_fresh_settings_file():
    out, changes = install({}, CMD)
    assert list(out) == ["hooks"]
    assert list(out["hooks"]) == list(INSTALLED_EVENTS)
    for event in INSTALLED_EVENTS:
        # A hook that may hold the call for the viewer's answer gets Claude Code's longest.
        timeout = 600 if event in ("PreToolUse", "PermissionRequest") else 10
        entry = {"type": "command", "command": CMD, "timeout": timeout}
        if event in TOOL_EVENTS:
            assert out["hooks"][event] == [{"matcher": "*", "hooks": [entry]}]
        else:
            assert out["hooks"][event] == [{"hooks": [entry]}]
    assert changes.added == INSTALLED_EVENTS
    assert changes.updated == () and changes.removed == ()
    assert changes.changed


def test_install_keeps_user_settings_and_replaces_stale_entries():
    original = installed_by_old_version()
    before = copy.deepcopy(original)
    out, changes = install(original, CMD)

    assert original == before, "install mutated its input"
    # Every key but hooks is untouched, in the same order.
    assert list(out) == list(original)
    for key in original:
        if key != "hooks":
            assert dump(out[key]) == dump(original[key])
    # Exactly one entry of ours per installed event, with the new path; nothing stale.
    assert find_ours(out) == {e: [CMD] for e in INSTALLED_EVENTS}
    assert STALE not in dump(out) and CONSOLE not in dump(out)
    # The Worktree events keep the user's own hook and get none of ours.
    assert out["hooks"]["WorktreeCreate"] == [USER_WORKTREE]
    assert "WorktreeRemove" not in out["hooks"]
    # The user's groups come first, unchanged; the shared Stop group lost only our entry.
    assert out["hooks"]["PreToolUse"] == [
        BASH_GUARD,
        {"matcher": "*", "hooks": [{"type": "command", "command": CMD, "timeout": 600}]},
    ]
    assert out["hooks"]["Stop"] == [
        {"hooks": [NOTIFIER]},
        {"hooks": [{"type": "command", "command": CMD, "timeout": 10}]},
    ]
    # Removing what we added gives back the user's file exactly, key order included.
    assert dump(uninstall(out)[0]) == dump(user_settings())

    assert set(changes.updated) == {"PreToolUse", "Stop"}
    assert set(changes.removed) == {"WorktreeCreate", "WorktreeRemove"}
    assert set(changes.added) == set(INSTALLED_EVENTS) - {"PreToolUse", "Stop"}
    assert changes.changed


def test_install_is_idempotent():
    once, first = install(installed_by_old_version(), CMD)
    twice, second = install(once, CMD)
    assert first.changed
    assert dump(twice) == dump(once)
    assert second == Changes()
    assert not second.changed


def test_install_does_not_move_our_group_when_user_adds_one_after_it():
    s, _ = install(user_settings(), CMD)
    s["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "echo later"}]})
    out, changes = install(s, CMD)
    assert not changes.changed
    assert dump(out) == dump(s)


def test_install_repairs_duplicate_of_current_command():
    s, _ = install({}, CMD)
    s["hooks"]["Stop"].append(copy.deepcopy(s["hooks"]["Stop"][0]))
    out, changes = install(s, CMD)
    assert changes.updated == ("Stop",)
    assert changes.added == () and changes.removed == ()
    assert find_ours(out)["Stop"] == [CMD]


def test_install_new_timeout_updates_every_event():
    s, _ = install(user_settings(), CMD)
    out, changes = install(s, CMD, timeout_s=30)
    # Every event but the two that may hold a call for the viewer, which keep 600 s.
    assert set(changes.updated) == set(INSTALLED_EVENTS) - {"PreToolUse", "PermissionRequest"}
    assert changes.added == () and changes.removed == ()
    assert out["hooks"]["Stop"][-1]["hooks"][0]["timeout"] == 30
    assert out["hooks"]["PermissionRequest"][-1]["hooks"][0]["timeout"] == 600
    assert out["hooks"]["Stop"][0] == {"hooks": [NOTIFIER]}


def test_install_subset_removes_ours_from_other_events():
    s, _ = install(user_settings(), CMD)
    out, changes = install(s, CMD, events=["Stop", "PreToolUse"])
    assert find_ours(out) == {"PreToolUse": [CMD], "Stop": [CMD]}
    assert set(changes.removed) == set(INSTALLED_EVENTS) - {"Stop", "PreToolUse"}
    assert changes.added == () and changes.updated == ()
    assert out["hooks"]["WorktreeCreate"] == [USER_WORKTREE]
    assert list(out["hooks"]) == ["PreToolUse", "Stop", "WorktreeCreate"]


def test_install_removes_ours_from_events_unknown_to_this_version():
    s = user_settings()
    s["hooks"]["RetiredEvent"] = [{"hooks": [{"type": "command", "command": STALE}]}]
    s["hooks"]["FutureEvent"] = [{"hooks": [{"type": "command", "command": "user thing"}]}]
    out, changes = install(s, CMD)
    assert "RetiredEvent" not in out["hooks"]
    assert out["hooks"]["FutureEvent"] == s["hooks"]["FutureEvent"]
    assert changes.removed == ("RetiredEvent",)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"events": ["WorktreeCreate"]}, ValueError),
        ({"events": ["Stop", "WorktreeRemove"]}, ValueError),
        ({"events": ["NoSuchEvent"]}, ValueError),
        ({"events": "Stop"}, TypeError),
        ({"timeout_s": 0}, ValueError),
        ({"timeout_s": True}, ValueError),
        ({"command": "/usr/bin/true"}, ValueError),
    ],
)
def test_install_rejects_bad_arguments(kwargs, error):
    args = {"command": CMD, **kwargs}
    with pytest.raises(error):
        install(user_settings(), **args)


def test_install_refuses_malformed_hooks():
    with pytest.raises(SettingsError, match="hooks"):
        install({"hooks": ["not", "an", "object"]}, CMD)
    with pytest.raises(SettingsError, match="Stop"):
        install({"hooks": {"Stop": {"hooks": []}}}, CMD)


def test_install_leaves_malformed_values_it_does_not_need_alone():
    s = {"hooks": {"FutureEvent": "whatever", "Stop": [42, {"hooks": "x"}]}}
    out, _ = install(s, CMD, events=["Stop"])
    assert out["hooks"]["FutureEvent"] == "whatever"
    assert out["hooks"]["Stop"] == [42, {"hooks": "x"}, hs.our_group("Stop", CMD)]


# --- uninstall and find_ours -------------------------------------------------------------------


def test_uninstall_removes_exactly_ours():
    s = installed_by_old_version()
    before = copy.deepcopy(s)
    out, changes = uninstall(s)
    assert s == before, "uninstall mutated its input"
    assert dump(out) == dump(user_settings())
    assert set(changes.removed) == {"PreToolUse", "Stop", "WorktreeCreate", "WorktreeRemove"}
    assert changes.added == () and changes.updated == ()
    assert find_ours(out) == {}


def test_uninstall_drops_hooks_key_it_emptied():
    s, _ = install({"model": "opus"}, CMD)
    out, changes = uninstall(s)
    assert out == {"model": "opus"}
    assert set(changes.removed) == set(INSTALLED_EVENTS)


def test_uninstall_keeps_containers_the_user_left_empty():
    s = {"hooks": {"Stop": [], "PreToolUse": [{"matcher": "Bash", "hooks": []}]}}
    out, changes = uninstall(s)
    assert dump(out) == dump(s)
    assert not changes.changed
    assert uninstall({"hooks": {}}) == ({"hooks": {}}, Changes())


def test_uninstall_without_ours_changes_nothing():
    out, changes = uninstall(user_settings())
    assert dump(out) == dump(user_settings())
    assert not changes.changed
    assert uninstall({"hooks": "garbage"}) == ({"hooks": "garbage"}, Changes())


def test_find_ours():
    assert find_ours(installed_by_old_version()) == {
        "PreToolUse": [STALE, CONSOLE],
        "Stop": [STALE],
        "WorktreeCreate": [STALE],
        "WorktreeRemove": [STALE],
    }
    assert find_ours(user_settings()) == {}
    assert find_ours({"hooks": {"Stop": "x", "PreToolUse": [1, {"hooks": None}]}}) == {}


# --- http entries ------------------------------------------------------------------------------


def http_entry(event: str, hook: HttpHook = HTTP, timeout: int = 10) -> dict:
    return {"type": "http", "url": hook.url, "onFailure": "continue",
            "timeout": 600 if event in ("PreToolUse", "PermissionRequest") else timeout,
            "headers": {"Authorization": f"Bearer {hook.token}"}}


def test_command_only_events_come_from_the_catalogue():
    assert {"SessionStart", "Setup"} == COMMAND_ONLY_EVENTS
    assert len(HTTP_EVENTS) == 29


def test_install_http_on_a_fresh_file():
    out, changes = install({}, CMD, http=HTTP)
    assert list(out["hooks"]) == list(INSTALLED_EVENTS)
    for event in INSTALLED_EVENTS:
        (group,) = out["hooks"][event]
        (entry,) = group["hooks"]
        if event == "SessionStart":
            assert entry == {"type": "command", "command": CMD_START, "timeout": 10}
        elif event == "Setup":
            assert entry == {"type": "command", "command": CMD, "timeout": 10}
        else:
            assert entry == http_entry(event)
            assert list(entry) == ["type", "url", "onFailure", "timeout", "headers"]
        assert ("matcher" in group) == (event in TOOL_EVENTS)
    assert out["hooks"]["PermissionRequest"][0]["hooks"][0]["timeout"] == 600
    assert changes.added == INSTALLED_EVENTS
    assert find_ours(out) == expected_keys(INSTALLED_EVENTS, HTTP)
    assert find_ours(out)["SessionStart"] == [CMD_START]
    again, second = install(out, CMD, http=HTTP)
    assert dump(again) == dump(out) and second == Changes()


def test_install_upgrades_command_entries_to_http_in_place_and_back():
    """The user's groups around ours stay where they are, and so does ours."""
    s = user_settings()
    s["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "echo after"}]})
    commands, _ = install(s, CMD)
    # The user adds a group after ours: ours stays in the middle of Stop and PreToolUse.
    commands["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "echo last"}]})
    commands["hooks"]["PreToolUse"].append({"matcher": "Edit", "hooks": [{"type": "command",
                                                                          "command": "lint"}]})
    http, changes = install(commands, CMD, http=HTTP)
    assert set(changes.updated) == {*HTTP_EVENTS, "SessionStart"}
    assert changes.added == () and changes.removed == ()
    for event in INSTALLED_EVENTS:
        before, after = commands["hooks"][event], http["hooks"][event]
        assert len(before) == len(after)
        for old, new in zip(before, after, strict=True):
            if find_ours({"hooks": {event: [old]}}):
                assert new == hs.our_group(event, CMD, http=HTTP)
            else:
                assert new == old
    assert http["hooks"]["Stop"][-1]["hooks"][0]["command"] == "echo last"
    assert http["hooks"]["PreToolUse"][1]["hooks"][0] == http_entry("PreToolUse")
    # And back: the file is what the command install made, byte for byte.
    back, changes = install(http, CMD)
    assert set(changes.updated) == {*HTTP_EVENTS, "SessionStart"}
    assert dump(back) == dump(commands)
    assert dump(uninstall(back)[0]) == dump(uninstall(commands)[0])


def test_install_replaces_http_entries_with_another_port_or_token():
    s, _ = install(user_settings(), CMD, http=HTTP)
    moved = HttpHook(7721, TOKEN)
    out, changes = install(s, CMD, http=moved)
    assert set(changes.updated) == set(HTTP_EVENTS)
    assert {u for urls in find_ours(out).values() for u in urls} == {CMD, CMD_START, moved.url}
    rotated = HttpHook(7721, "c" * 64)
    out2, changes = install(out, CMD, http=rotated)
    assert set(changes.updated) == set(HTTP_EVENTS)
    assert out2["hooks"]["Stop"][-1]["hooks"][0]["headers"] == {
        "Authorization": "Bearer " + "c" * 64}
    assert TOKEN not in dump(out2)


def test_a_shared_group_keeps_the_users_entry_and_ours_goes_right_after_it():
    s = {"hooks": {"Stop": [
        {"hooks": [{"type": "command", "command": "echo mine"}, dict(OLD_HTTP)]},
        {"hooks": [{"type": "command", "command": "echo other"}]},
    ]}}
    out, changes = install(s, CMD, events=["Stop"], http=HTTP)
    assert changes.updated == ("Stop",)
    assert out["hooks"]["Stop"] == [
        {"hooks": [{"type": "command", "command": "echo mine"}]},
        hs.our_group("Stop", CMD, http=HTTP),
        {"hooks": [{"type": "command", "command": "echo other"}]},
    ]


def test_http_entries_under_command_only_events_become_command_entries():
    s = {"hooks": {"SessionStart": [{"hooks": [dict(BARE_HTTP)]}]}}
    out, changes = install(s, CMD, http=HTTP)
    assert changes.updated[0] == "SessionStart"
    assert out["hooks"]["SessionStart"] == [hs.our_group("SessionStart", CMD, http=HTTP)]
    assert out["hooks"]["SessionStart"][0]["hooks"][0]["command"] == CMD_START


def test_session_start_starts_the_daemon_only_next_to_http_entries():
    assert hs.event_command("SessionStart", CMD, True) == CMD_START
    assert hs.event_command("SessionStart", CMD_START, True) == CMD_START
    assert hs.event_command("SessionStart", CMD, False) == CMD
    assert hs.event_command("Setup", CMD, True) == CMD
    assert hs.base_command(CMD_START) == CMD
    # Given the flagged command, install still writes the plain one where it belongs.
    out, _ = install({}, CMD_START)
    assert set(find_ours(out)["SessionStart"]) == {CMD}
    assert install(out, CMD)[1] == Changes()


def test_uninstall_removes_both_kinds_and_nothing_else():
    s = user_settings()
    s["hooks"]["Stop"][0]["hooks"].append(dict(OLD_HTTP))
    s["hooks"]["PreToolUse"].append({"matcher": "*", "hooks": [dict(BARE_HTTP)]})
    s["hooks"]["PreToolUse"].append({"hooks": [{"type": "command", "command": STALE}]})
    # Not ours: another host, path or scheme, and a user's own http hook.
    theirs = [{"type": "http", "url": "http://localhost:7720/hook"},
              {"type": "http", "url": "http://127.0.0.1:7720/other"},
              {"type": "http", "url": "https://hooks.example.com/hook",
               "headers": {"Authorization": "Bearer $MY_TOKEN"}, "allowedEnvVars": ["MY_TOKEN"]}]
    s["hooks"]["Notification"] = [{"hooks": copy.deepcopy(theirs)}]
    out, changes = uninstall(s)
    assert set(changes.removed) == {"Stop", "PreToolUse"}
    assert out["hooks"]["Notification"] == [{"hooks": theirs}]
    del out["hooks"]["Notification"]
    assert dump(out) == dump(user_settings())


def test_find_ours_and_tokens():
    s, _ = install({}, CMD, http=HTTP)
    s["hooks"]["Stop"].append({"hooks": [dict(OLD_HTTP), {"type": "http", "url": URL}]})
    found = hs.find_our_entries(s)
    assert [hs.entry_key(h) for _g, h in found["Stop"]] == [URL, OLD_HTTP["url"], URL]
    assert [hs.entry_token(h) for _g, h in found["Stop"]] == [TOKEN, "b" * 64, None]
    assert hs.entry_token({"headers": {"authorization": "Bearer $T"}}) == "$T"
    assert hs.entry_token({"headers": {"Authorization": "Basic x"}}) is None
    assert hs.entry_token({"headers": "Authorization: Bearer x"}) is None
    assert hs.holds_token(s)
    assert not hs.holds_token(install({}, CMD)[0])
    assert not hs.holds_token({"hooks": {"Stop": [{"hooks": [
        {"type": "http", "url": URL, "headers": {"Authorization": "Bearer $MPMD_TOKEN"}}]}]}})


@pytest.mark.parametrize(("port", "token"), [
    (0, TOKEN), (65536, TOKEN), (True, TOKEN), ("7720", TOKEN),
    (7720, ""), (7720, "two words"), (7720, "line\nbreak"), (7720, "ünï"), (7720, None),
])
def test_http_hook_refuses_what_it_cannot_write(port, token):
    with pytest.raises(ValueError):
        HttpHook(port, token)


def test_install_rejects_an_http_that_is_not_an_http_hook():
    with pytest.raises(TypeError):
        install({}, CMD, http={"port": 7720, "token": TOKEN})


# --- choosing the transport --------------------------------------------------------------------

NEW = ClaudeCode("/usr/local/bin/claude", "2.1.328")
FIRST = ClaudeCode("/usr/local/bin/claude", "2.1.63")
OLD_CLAUDE = ClaudeCode("/usr/local/bin/claude", "2.1.62")
UNKNOWN = ClaudeCode(error="claude is not on PATH")
UP = Endpoint(7720, running=True, port=7720, token=TOKEN)


@pytest.mark.parametrize(("claude", "endpoint", "shared", "transport", "why"), [
    (NEW, UP, None, "http", "Claude Code 2.1.328 (/usr/local/bin/claude) takes http hooks "
                            "(2.1.63 and later), and mpmd's endpoint answers on "
                            "http://127.0.0.1:7720/hook"),
    (FIRST, UP, None, "http", "Claude Code 2.1.63"),
    (OLD_CLAUDE, UP, None, "command", "Claude Code 2.1.62 (/usr/local/bin/claude) predates http "
                                      "hooks (2.1.63)"),
    (UNKNOWN, UP, None, "command", "Claude Code's version is unknown: claude is not on PATH; "
                                   "command hooks work with every version"),
    (NEW, Endpoint(-1), None, "command", "the daemon's http endpoint is off (http_port = -1)"),
    (NEW, Endpoint(7720, running=True, error="off (http_port = -1)"), None, "command",
     "the daemon runs without its http endpoint (off (http_port = -1))"),
    (NEW, Endpoint(7720, running=True, error="cannot listen on 127.0.0.1:7720: Address "
                   "already in use"), None, "command", "cannot listen on 127.0.0.1:7720"),
    (NEW, Endpoint(7720, token=TOKEN), None, "command", "mpmd is not running"),
    (NEW, Endpoint(0, running=True, port=41234, token=TOKEN), None, "command", "http_port = 0"),
    (NEW, Endpoint(7720, running=True, port=7730, token=TOKEN), None, "command",
     "the daemon listens on 7730, but http_port says 7720"),
    (NEW, UP, ".claude/settings.json", "command", ".claude/settings.json is a project's shared"),
    (NEW, Endpoint(7720, running=True, port=7720), None, "command", "cannot be read"),
])
def test_auto_takes_http_only_when_everything_says_it_works(claude, endpoint, shared,
                                                            transport, why):
    choice = choose_transport("auto", claude, endpoint, shared_file=shared)
    assert choice.transport == transport and choice.error is None
    assert why in choice.why, choice.why
    assert (choice.port == 7720) if transport == "http" else choice.port is None


def test_auto_says_what_would_give_http_hooks():
    choice = choose_transport("auto", NEW, Endpoint(7720, token=TOKEN))
    assert choice.notes == ("for http hooks: run install-hooks again once mpmd runs "
                            "(mpmd start)",)
    choice = choose_transport("auto", UNKNOWN, UP)
    assert "--transport http if the Claude Code you run is 2.1.63 or later" in choice.notes[0]


@pytest.mark.parametrize(("claude", "endpoint", "shared", "error"), [
    (OLD_CLAUDE, UP, None, "predates http hooks"),
    (NEW, Endpoint(-1), None, "off (http_port = -1)"),
    (NEW, Endpoint(7720, running=True, error="cannot listen"), None, "cannot listen"),
    (NEW, Endpoint(0), None, "no daemon has published its port yet"),
    (NEW, UP, ".claude/settings.json", "shared settings file"),
])
def test_http_is_refused_where_it_cannot_work(claude, endpoint, shared, error):
    choice = choose_transport("http", claude, endpoint, shared_file=shared)
    assert choice.error is not None and error in choice.error


def test_http_is_written_with_a_note_where_it_merely_may_not_work():
    choice = choose_transport("http", UNKNOWN, Endpoint(7720))
    assert (choice.transport, choice.port, choice.error) == ("http", 7720, None)
    assert [n.split(":")[0] for n in choice.notes] == [
        "mpmd is not running", "could not check Claude Code's version (claude is not on PATH)"]
    choice = choose_transport("http", NEW, Endpoint(0, running=True, port=41234, token=TOKEN))
    assert choice.port == 41234 and "changes each time the daemon starts" in choice.notes[0]
    # Not running with port 0: the port it last published.
    assert choose_transport("http", NEW, Endpoint(0, port=41234)).port == 41234
    # A daemon started with another port than the configuration says: its own.
    choice = choose_transport("http", NEW, Endpoint(7720, running=True, port=7730, token=TOKEN))
    assert choice.port == 7730 and "http_port says 7720" in choice.notes[0]


def test_command_is_always_possible():
    for claude in (NEW, OLD_CLAUDE, UNKNOWN):
        choice = choose_transport("command", claude, Endpoint(-1))
        assert (choice.transport, choice.error) == ("command", None)
    with pytest.raises(ValueError):
        choose_transport("carrier-pigeon", NEW, UP)


@pytest.mark.parametrize(("text", "version"), [
    ("2.1.328 (Claude Code)\n", (2, 1, 328)), ("2.1.63", (2, 1, 63)),
    ("3.0.0-beta.1 (Claude Code)", (3, 0, 0)), ("", None), ("Claude Code", None),
    ("2.1", None), ("v2.1.3", None), (None, None),
])
def test_parse_version(text, version):
    assert hs.parse_version(text) == version


def test_shared_project_file(tmp_path):
    home = str(tmp_path / "home")
    assert hs.shared_project_file(tmp_path / "app" / ".claude" / "settings.json", home)
    assert not hs.shared_project_file(tmp_path / "app" / ".claude" / "settings.local.json", home)
    assert not hs.shared_project_file(tmp_path / "home" / ".claude" / "settings.json", home)
    assert not hs.shared_project_file(tmp_path / "elsewhere.json", home)


def fake_claude(folder: Path, output: str, code: int = 0) -> Path:
    path = folder / "claude"
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\nexit {code}\n")
    path.chmod(0o755)
    return path


@pytest.mark.integration  # find_claude runs `claude --version`
def test_find_claude(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    found = hs.find_claude({"PATH": str(tmp_path / "nowhere")}, home=str(home))
    assert found.version is None and "claude is not on PATH" in (found.error or "")
    local = fake_claude(home / ".local" / "bin", "2.1.50 (Claude Code)")
    assert hs.find_claude({"PATH": str(tmp_path / "nowhere")}, home=str(home)) == \
        ClaudeCode(str(local), "2.1.50")
    on_path = fake_claude(bin_dir, "2.1.328 (Claude Code)")
    found = hs.find_claude({"PATH": str(bin_dir)}, home=str(home))
    assert found == ClaudeCode(str(on_path), "2.1.328") and found.takes_http
    assert found.describe(str(tmp_path)) == "Claude Code 2.1.328 (~/bin/claude)"
    # MPMD_CLAUDE wins, and when it names nothing runnable, that is said.
    assert hs.find_claude({"PATH": str(bin_dir), "MPMD_CLAUDE": str(local)},
                          home=str(home)).version == "2.1.50"
    bad = hs.find_claude({"PATH": str(bin_dir), "MPMD_CLAUDE": str(tmp_path / "x")})
    assert bad.takes_http is None and "is not an executable file" in (bad.error or "")
    broken = fake_claude(tmp_path, "segfault", code=3)
    failed = hs.find_claude({"MPMD_CLAUDE": str(broken)})
    assert failed.takes_http is None and "said 'segfault' (exit 3)" in (failed.error or "")


def test_read_endpoint(tmp_path):
    from mpmd import config
    from mpmd.status import Status

    s = config.Settings(runtime_dir=tmp_path, state_dir=tmp_path, config_dir=tmp_path)
    assert hs.read_endpoint(s, None) == Endpoint(7720)
    (tmp_path / "http.port").write_text("7730\n")
    (tmp_path / "http.token").write_text(TOKEN + "\n")
    assert hs.read_endpoint(s, None) == Endpoint(7720, False, 7730, None, TOKEN)
    assert hs.read_endpoint(s, None).expected_port == 7720  # the configured one, when down
    running = Status(running=True, http_url="http://127.0.0.1:7731/hook", http_port=7731)
    assert hs.read_endpoint(s, running) == Endpoint(7720, True, 7731, None, TOKEN)
    off = Status(running=True, http_url=None, http_error="off (http_port = -1)")
    assert hs.read_endpoint(s, off).unavailable == \
        "the daemon runs without its http endpoint (off (http_port = -1))"
    older = hs.read_endpoint(s, Status(running=True))  # a daemon from before the endpoint
    assert older.port is None and older.unavailable is not None
    (tmp_path / "http.token").write_text("not a token\n")
    assert hs.read_endpoint(s, running).token is None


# --- file I/O ----------------------------------------------------------------------------------


def write_json(path: Path, data: object) -> bytes:
    raw = (json.dumps(data, indent=4, ensure_ascii=False) + "\n").encode()
    path.write_bytes(raw)
    return raw


def test_load_missing_and_blank(tmp_path):
    assert load_settings(tmp_path / "nope.json") == {}
    (tmp_path / "empty.json").write_bytes(b"")
    assert load_settings(tmp_path / "empty.json") == {}
    (tmp_path / "blank.json").write_bytes(b"  \n\t\n")
    assert load_settings(tmp_path / "blank.json") == {}


def test_load_accepts_utf8_bom(tmp_path):
    p = tmp_path / "settings.json"
    p.write_bytes(b'\xef\xbb\xbf{"model": "opus"}')
    assert load_settings(p) == {"model": "opus"}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n  "model": "opus",\n  "hooks": {,}\n}\n', ":3:"),
        ('{\n  // a comment\n  "model": "opus"\n}\n', ":2:3"),
        ('{"model": "opus",}', ":1:"),
    ],
)
def test_invalid_json_is_refused_and_untouched(tmp_path, text, where):
    p = tmp_path / "settings.json"
    p.write_text(text)
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    with pytest.raises(SettingsError) as err:
        load_settings(p)
    assert str(p) in str(err.value) and where in str(err.value)
    with pytest.raises(SettingsError):
        apply(p, lambda s: install(s, CMD))
    assert p.read_text() == text
    assert p.stat().st_mtime_ns == 1_000_000_000
    assert sorted(x.name for x in tmp_path.iterdir()) == ["settings.json"]


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"[]", "not an object"),
        (b'"hooks"', "not an object"),
        (b"null", "not an object"),
        (b'{"hooks": {}, "hooks": {"Stop": []}}', "duplicate key 'hooks'"),
        (b'{"x": NaN}', "NaN"),
        (b'{"model": "\xff"}', "UTF-8"),
    ],
)
def test_unusable_files_are_refused(tmp_path, raw, match):
    p = tmp_path / "settings.json"
    p.write_bytes(raw)
    with pytest.raises(SettingsError, match=match):
        load_settings(p)
    with pytest.raises(SettingsError):
        apply(p, uninstall)
    assert p.read_bytes() == raw


def test_settings_error_is_value_error():
    assert issubclass(SettingsError, ValueError)


def test_save_new_file(tmp_path):
    p = tmp_path / "project" / ".claude" / "settings.local.json"
    data = {"model": "opus", "env": {"X": "ünï"}, "hooks": {}}
    assert save_settings(p, data) is None
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert p.read_text(encoding="utf-8") == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    assert "ünï" in p.read_text(encoding="utf-8")
    assert load_settings(p) == data
    assert sorted(x.name for x in p.parent.iterdir()) == ["settings.local.json"]


def test_save_keeps_mode_and_writes_one_backup(tmp_path):
    p = tmp_path / "settings.json"
    first = write_json(p, {"model": "opus"})
    p.chmod(0o640)
    backup = save_settings(p, {"model": "sonnet"})
    assert backup == tmp_path / "settings.json.mpmd-backup"
    assert backup.read_bytes() == first
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert load_settings(p) == {"model": "sonnet"}

    second = p.read_bytes()
    assert save_settings(p, {"model": "haiku"}) == backup
    assert backup.read_bytes() == second
    assert save_settings(p, {"model": "opus"}, backup=False) is None
    assert backup.read_bytes() == second
    assert sorted(x.name for x in tmp_path.iterdir()) == [
        "settings.json",
        "settings.json.mpmd-backup",
    ]


def test_save_writes_through_symlink(tmp_path):
    real = tmp_path / "dotfiles" / "claude-settings.json"
    real.parent.mkdir()
    write_json(real, {"model": "opus"})
    link = tmp_path / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)
    save_settings(link, {"model": "sonnet"})
    assert link.is_symlink()
    assert load_settings(real) == {"model": "sonnet"}


def test_apply_install_then_reinstall_then_uninstall(tmp_path):
    p = tmp_path / "settings.json"
    original_bytes = write_json(p, installed_by_old_version())
    p.chmod(0o644)

    changes = apply(p, lambda s: install(s, CMD))
    assert changes.changed
    assert changes.backup == tmp_path / "settings.json.mpmd-backup"
    assert changes.backup.read_bytes() == original_bytes
    assert load_settings(p) == install(installed_by_old_version(), CMD)[0]
    assert p.read_text().endswith("}\n") and '\n  "hooks": {\n' in p.read_text()
    assert stat.S_IMODE(p.stat().st_mode) == 0o644

    # Reinstalling writes nothing: same bytes, same inode, same (deliberately old) mtime.
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    os.utime(changes.backup, ns=(2_000_000_000, 2_000_000_000))
    before = p.stat()
    installed_bytes = p.read_bytes()
    again = apply(p, lambda s: install(s, CMD))
    assert again == Changes()
    assert not again.changed
    assert p.read_bytes() == installed_bytes
    assert p.stat().st_ino == before.st_ino
    assert p.stat().st_mtime_ns == 1_000_000_000
    assert changes.backup.stat().st_mtime_ns == 2_000_000_000

    removed = apply(p, uninstall)
    assert set(removed.removed) == set(INSTALLED_EVENTS)
    assert dump(load_settings(p)) == dump(user_settings())
    assert removed.backup is not None and removed.backup.read_bytes() == installed_bytes


def test_apply_without_changes_creates_no_file(tmp_path):
    p = tmp_path / ".claude" / "settings.json"
    assert apply(p, uninstall) == Changes()
    assert not p.parent.exists()


def test_apply_creates_missing_file_without_backup(tmp_path):
    p = tmp_path / ".claude" / "settings.json"
    changes = apply(p, lambda s: install(s, CMD, events=["Stop"]))
    assert changes.added == ("Stop",) and changes.backup is None
    assert load_settings(p) == {"hooks": {"Stop": [hs.our_group("Stop", CMD)]}}
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_apply_refuses_when_file_changed_meanwhile(tmp_path):
    p = tmp_path / "settings.json"
    write_json(p, user_settings())
    theirs = b'{"model": "edited by someone else"}\n'

    def racing_install(s):
        p.write_bytes(theirs)
        return install(s, CMD)

    with pytest.raises(SettingsError, match="changed while"):
        apply(p, racing_install)
    assert p.read_bytes() == theirs


def test_apply_names_the_file_on_shape_errors(tmp_path):
    p = tmp_path / "settings.json"
    raw = write_json(p, {"hooks": []})
    with pytest.raises(SettingsError, match="settings.json"):
        apply(p, lambda s: install(s, CMD))
    assert p.read_bytes() == raw


def test_apply_makes_a_file_holding_the_token_owner_only(tmp_path):
    p = tmp_path / "settings.json"
    write_json(p, user_settings())
    p.chmod(0o644)
    changes = apply(p, lambda s: install(s, CMD))
    assert changes.made_private is None  # command entries hold no secret: the mode stays
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    changes = apply(p, lambda s: install(s, CMD, http=HTTP))
    assert changes.made_private == 0o644
    assert set(changes.updated) == {*HTTP_EVENTS, "SessionStart"}
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert changes.backup is not None
    assert stat.S_IMODE(changes.backup.stat().st_mode) == 0o600

    # Someone loosens it again: a second install changes no byte, only the mode.
    p.chmod(0o640)
    changes.backup.chmod(0o644)
    before = p.stat()
    again = apply(p, lambda s: install(s, CMD, http=HTTP))
    assert not again.changed and again.made_private == 0o640
    assert p.stat().st_ino == before.st_ino and p.stat().st_mtime_ns == before.st_mtime_ns
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(changes.backup.stat().st_mode) == 0o600
    assert apply(p, lambda s: install(s, CMD, http=HTTP)) == Changes()

    # Back to command entries, and uninstalled: the file stays owner-only.
    assert apply(p, lambda s: install(s, CMD)).made_private is None
    assert TOKEN not in p.read_text()
    apply(p, uninstall)
    assert dump(load_settings(p)) == dump(user_settings())
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_apply_makes_the_target_of_a_symlink_owner_only(tmp_path):
    real = tmp_path / "dotfiles" / "claude-settings.json"
    real.parent.mkdir()
    write_json(real, {"model": "opus"})
    real.chmod(0o664)
    link = tmp_path / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)
    changes = apply(link, lambda s: install(s, CMD, http=HTTP))
    assert changes.made_private == 0o664
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o600
    real.chmod(0o644)
    assert apply(link, lambda s: install(s, CMD, http=HTTP)).made_private == 0o644
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o600


def test_apply_private_on_request(tmp_path):
    p = tmp_path / "settings.json"
    write_json(p, {"model": "opus"})
    p.chmod(0o644)
    assert apply(p, uninstall, private=True).made_private == 0o644
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


# --- properties --------------------------------------------------------------------------------

user_commands = st.text(min_size=1, max_size=30).filter(lambda c: not is_ours({"command": c}))
user_command_entries = st.fixed_dictionaries(
    {"type": st.just("command"), "command": user_commands},
    optional={"timeout": st.integers(1, 600), "async": st.booleans()},
)
# The user's own http hooks, some of them close to ours without being ours.
user_urls = st.one_of(
    st.sampled_from(["http://localhost:7720/hook", "https://127.0.0.1:7720/hook",
                     "http://127.0.0.1:7720/hooks", "http://127.0.0.1:7720/hook/",
                     "https://hooks.example.com/claude"]),
    st.text(max_size=30),
).filter(lambda u: hs.url_port(u) is None)
user_http_entries = st.fixed_dictionaries(
    {"type": st.just("http"), "url": user_urls},
    optional={"timeout": st.integers(1, 600),
              "headers": st.dictionaries(st.sampled_from(["Authorization", "X-Key"]),
                                         st.text(max_size=10))},
)
user_entries = st.one_of(user_command_entries, user_http_entries)
user_groups = st.fixed_dictionaries(
    {"hooks": st.lists(user_entries, min_size=1, max_size=3)},
    optional={"matcher": st.sampled_from(["*", "", "Bash", "Edit|Write", "mcp__.*"])},
)
event_names = st.sampled_from((*KNOWN_EVENTS, "FutureEvent"))
user_hooks = st.dictionaries(
    event_names, st.lists(user_groups, min_size=1, max_size=3), min_size=1, max_size=6
)
user_files = st.fixed_dictionaries(
    {},
    optional={
        "model": st.text(max_size=10),
        "hooks": user_hooks,
        "permissions": st.fixed_dictionaries(
            {"allow": st.lists(st.text(max_size=10), min_size=1, max_size=3)}
        ),
        "env": st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), min_size=1),
    },
)
event_subsets = st.lists(st.sampled_from(INSTALLED_EVENTS), unique=True,
                         max_size=len(INSTALLED_EVENTS))
# No http (command entries only), or an endpoint on some port with some token.
transports = st.one_of(st.none(), st.builds(
    HttpHook, st.integers(1, 65535),
    st.text("0123456789abcdef", min_size=1, max_size=64)))

STALE_ENTRIES = [
    {"type": "command", "command": STALE, "timeout": 10},
    {"type": "command", "command": CONSOLE},
    {"type": "command", "command": CMD, "timeout": 99},
    OLD_HTTP,
    BARE_HTTP,
    {"type": "http", "url": URL, "timeout": 10, "headers": {"Authorization": "Bearer $T"}},
    {"type": "command", "command": CMD_START, "timeout": 10},
]


def inject_stale(s: dict, data: st.DataObject) -> dict:
    """A copy of s with a few stale entries of ours in own and shared groups."""
    s = copy.deepcopy(s)
    for _ in range(data.draw(st.integers(1, 4))):
        entry = copy.deepcopy(data.draw(st.sampled_from(STALE_ENTRIES)))
        groups = s.setdefault("hooks", {}).setdefault(data.draw(event_names), [])
        if groups and data.draw(st.booleans()):
            group = groups[data.draw(st.integers(0, len(groups) - 1))]
            group["hooks"].insert(data.draw(st.integers(0, len(group["hooks"]))), entry)
        else:
            groups.insert(data.draw(st.integers(0, len(groups))), {"hooks": [entry]})
    return s


def first_slot(groups: list) -> int:
    """Where our group belongs among the groups kept: where the first group holding an entry
    of ours was, or right after it when it also holds the user's; else at the end."""
    kept = 0
    for group in groups:
        entries = group.get("hooks") if isinstance(group, dict) else None
        if isinstance(entries, list) and any(is_ours(h) for h in entries):
            return kept + (1 if any(not is_ours(h) for h in entries) else 0)
        kept += 1
    return kept


def expected_keys(events, http: HttpHook | None) -> dict[str, list[str]]:
    """Event -> the key of our one entry: the url, or the command (SessionStart's starting
    the daemon next to http entries)."""
    def key(event: str) -> str:
        if http is None:
            return CMD
        return CMD_START if event == "SessionStart" else CMD if event == "Setup" else http.url
    return {e: [key(e)] for e in events}


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(user_files, event_subsets, transports)
def test_property_install_uninstall_roundtrip(s, events, http):
    before = copy.deepcopy(s)
    once, c1 = install(s, CMD, events=events, http=http)
    assert s == before
    assert c1.changed == bool(events)
    assert find_ours(once) == expected_keys(events, http)
    twice, c2 = install(once, CMD, events=events, http=http)
    assert dump(twice) == dump(once)
    assert not c2.changed
    back, c3 = uninstall(once)
    assert dump(back) == dump(s)
    assert set(c3.removed) == set(events)


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(user_files, transports, transports)
def test_property_switching_transports_in_place(s, first, second):
    """Installing with one transport and then another gives what installing the second
    alone gives, byte for byte: the switch happens in place, and nothing of the first is
    left."""
    one, _ = install(s, CMD, http=first)
    switched, changes = install(one, CMD, http=second)
    direct, _ = install(s, CMD, http=second)
    assert dump(switched) == dump(direct)
    assert changes.added == () and changes.removed == ()
    assert changes.changed == (dump(one) != dump(direct))


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(user_files, st.data(), transports)
def test_property_stale_entries_are_replaced(s, data, http):
    dirty = inject_stale(s, data)
    assert find_ours(dirty)
    clean, c = uninstall(dirty)
    assert dump(clean) == dump(s)
    assert c.changed
    repaired, c2 = install(dirty, CMD, http=http)
    assert c2.changed
    assert find_ours(repaired) == expected_keys(INSTALLED_EVENTS, http)
    # The user's part is untouched; ours is where the first stale entry of ours was.
    assert uninstall(repaired)[0] == s
    for event, groups in repaired["hooks"].items():
        if event not in INSTALLED_EVENTS:
            continue
        at = groups.index(hs.our_group(event, CMD, http=http))
        assert at == first_slot(dirty["hooks"].get(event) or [])
    assert dump(install(repaired, CMD, http=http)[0]) == dump(repaired)
