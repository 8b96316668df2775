"""Tests for mpmd.hooks_settings: merging our hook into Claude Code settings files."""

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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the package is not necessarily installed in the venv
    sys.path.insert(0, str(ROOT))

from mpmd import hooks_settings as hs  # noqa: E402
from mpmd.hooks_settings import (  # noqa: E402
    INSTALLED_EVENTS,
    KNOWN_EVENTS,
    TOOL_EVENTS,
    Changes,
    SettingsError,
    apply,
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


# --- properties --------------------------------------------------------------------------------

user_commands = st.text(min_size=1, max_size=30).filter(lambda c: not is_ours({"command": c}))
user_entries = st.fixed_dictionaries(
    {"type": st.just("command"), "command": user_commands},
    optional={"timeout": st.integers(1, 600), "async": st.booleans()},
)
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

STALE_ENTRIES = [
    {"type": "command", "command": STALE, "timeout": 10},
    {"type": "command", "command": CONSOLE},
    {"type": "command", "command": CMD, "timeout": 99},
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


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(user_files, event_subsets)
def test_property_install_uninstall_roundtrip(s, events):
    before = copy.deepcopy(s)
    once, c1 = install(s, CMD, events=events)
    assert s == before
    assert c1.changed == bool(events)
    assert find_ours(once) == {e: [CMD] for e in events}
    twice, c2 = install(once, CMD, events=events)
    assert dump(twice) == dump(once)
    assert not c2.changed
    back, c3 = uninstall(once)
    assert dump(back) == dump(s)
    assert set(c3.removed) == set(events)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(user_files, st.data())
def test_property_stale_entries_are_replaced(s, data):
    dirty = inject_stale(s, data)
    assert find_ours(dirty)
    clean, c = uninstall(dirty)
    assert dump(clean) == dump(s)
    assert c.changed
    fresh, _ = install(s, CMD)
    repaired, c2 = install(dirty, CMD)
    assert repaired == fresh
    assert c2.changed
    assert find_ours(repaired) == {e: [CMD] for e in INSTALLED_EVENTS}
    assert uninstall(repaired)[0] == s
