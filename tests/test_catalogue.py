"""The one event catalogue (mpmd.model.events): everything derived from it agrees with it, the table
in docs/events.md says the same, and the real Claude Code knows exactly its event types and
no notification type it has no meaning for."""

from __future__ import annotations

import asyncio
import json
import mmap
import re
from pathlib import Path

import msgspec
from websockets.asyncio.client import connect

from mpmd.model import enrich, events
from mpmd.ops import doctor, hooks_settings
from tests.claude.api import Script, ScriptedAPI, say
from tests.claude.client import Sandbox, Terminal, require_claude
from tests.utils import ROOT, Daemon, status

DOCS = ROOT / "docs" / "events.md"
COMMON = {f.name for f in msgspec.structs.fields(events.CommonFields)}
WORKTREE = {"WorktreeCreate", "WorktreeRemove"}
# Claude Code 2.1.328's list of notification types, in its order.
NOTIFICATION_TYPES_2_1_328 = [
    "permission_prompt", "idle_prompt", "auth_success", "elicitation_dialog",
    "agent_needs_input", "agent_completed", "elicitation_url_dialog", "worker_permission_prompt",
    "push_notification", "computer_use_enter", "computer_use_exit", "quota_auto_resume_fired",
    "quota_auto_resume_stale", "quota_auto_resume_disabled", "model_refusal_fallback",
    "auth_storage_failure", "plugin_notification",
]


def names(rows: tuple[events.EventType, ...]) -> list[str]:
    return [e.name for e in rows]


def markdown_table(text: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading``, header and rule left out."""
    lines = text.split(heading + "\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), cell
    return cell[1:-1]


# ---- the catalogue and what derives from it -------------------------------------------------

def test_the_catalogue_holds_claude_codes_33_event_types_and_mpmds_own() -> None:
    assert names(events.CLAUDE_CODE_EVENTS) == [
        "PreToolUse", "PostToolUse", "PostToolUseFailure", "PostToolBatch", "Notification",
        "UserPromptSubmit", "UserPromptExpansion", "SessionStart", "SessionEnd", "Stop",
        "StopFailure", "SubagentStart", "SubagentStop", "PreCompact", "PostCompact",
        "PreModelSwitch", "PostModelSwitch", "PermissionRequest", "PermissionDenied", "Setup",
        "TeammateIdle", "TaskCreated", "TaskCompleted", "Elicitation", "ElicitationResult",
        "ConfigChange", "WorktreeCreate", "WorktreeRemove", "InstructionsLoaded", "CwdChanged",
        "FileChanged", "DirectoryAdded", "MessageDisplay"]
    assert names(events.MPMD_EVENTS) == ["RemoteAnswer", "PermissionAnswered", "ModelUsage",
                                         "CostReport"]
    assert len(set(names(events.CATALOGUE))) == 37
    assert {e.origin for e in events.CLAUDE_CODE_EVENTS} == {events.CLAUDE_CODE}
    assert {e.origin for e in events.MPMD_EVENTS} == {events.MPMD}
    assert {e.name for e in events.CATALOGUE if e.command_hooks_only} == {"SessionStart", "Setup"}


def test_every_derived_list_agrees_with_the_catalogue() -> None:
    claude, everything = events.CLAUDE_CODE_EVENTS, events.CATALOGUE
    known, installed = hooks_settings.KNOWN_EVENTS, hooks_settings.INSTALLED_EVENTS
    assert known == tuple(names(claude))
    assert installed == tuple(e.name for e in claude if e.installed)
    assert len(installed) == 31
    never, tools = hooks_settings.NEVER_INSTALLED, hooks_settings.TOOL_EVENTS
    assert never == WORKTREE == {e.name for e in claude if not e.installed}
    assert tools == {e.name for e in claude if e.tool_matcher} == {
        "PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest",
        "PermissionDenied"}
    claude_types, own_types = events.CLAUDE_EVENT_TYPES, events.MPMD_EVENT_TYPES
    assert claude_types == set(names(claude))
    assert own_types == set(names(events.MPMD_EVENTS))
    known_types, namespace_of = events.KNOWN_EVENT_TYPES, events.NAMESPACE_OF
    assert known_types == set(names(everything)) == set(events.EVENT_TYPES)
    assert events.KnownEvent.__args__ == tuple(e.struct for e in everything)
    assert namespace_of == {e.name: e.namespace for e in everything}
    assert set(namespace_of.values()) == set(events.NAMESPACES)
    assert events.catalogue_json() == [
        {"event_type": e.name, "namespace": e.namespace, "origin": e.origin}
        for e in everything]
    # doctor counts and names from the same lists.
    check = doctor.check_event_names([])
    assert check.line() == ("OK   event names: mpmd registers 31 of the 33 documented event "
                            "types (not WorktreeCreate, WorktreeRemove) and nothing else")


def test_every_event_type_decodes_to_its_struct_and_has_its_own_summary() -> None:
    for row in events.CATALOGUE:
        event, state, error = events.parse_payload(
            json.dumps({"hook_event_name": row.name, "session_id": "s"}).encode())
        assert (type(event), state, error) == (row.struct, events.OK, None)
        assert isinstance(event, events.HookEvent) and events.event_type_of(event) == row.name
        assert row.struct in enrich._HANDLERS, row.name


def test_a_model_switch_as_claude_code_sends_it() -> None:
    """The payloads Claude Code 2.1.328 sent for `/model sonnet` typed in a session."""
    common = {"session_id": "72a6521f-d45f-47bc-891f-e55a36222355",
              "transcript_path": "/home/u/.claude/projects/-p/72a6521f.jsonl", "cwd": "/p",
              "prompt_id": "805351ab-fd6f-41be-94a2-3d98f2d0bace", "from_model":
              "claude-opus-5-5", "to_model": "claude-sonnet-5-5", "requested_model": "sonnet",
              "source": "command", "context_tokens": 0, "prompt_cache_warm": False,
              "cache_ttl": "5m", "estimated_cache_write_usd": 0, "pricing": "catalog"}
    for name, summary in (("PreModelSwitch", "Model switch"),
                          ("PostModelSwitch", "Model switched")):
        event, state, _ = events.parse_payload(
            json.dumps({**common, "hook_event_name": name}).encode())
        assert state == events.OK and isinstance(event, events.EVENT_TYPES[name].struct)
        info = enrich.enrich(event, state)
        assert (info.summary, info.operation, info.risk) == (
            f"{summary}: claude-opus-5-5 -> claude-sonnet-5-5 (command)", "metadata", "low")
    event, state, _ = events.parse_payload(b'{"hook_event_name": "PostModelSwitch", '
                                           b'"to_model": "claude-haiku-4-5", "source": "resume"}')
    assert enrich.enrich(event, state).summary == "Model switched to claude-haiku-4-5 (resume)"


def test_notification_types_have_a_meaning() -> None:
    assert list(events.LISTED_NOTIFICATION_TYPES) == NOTIFICATION_TYPES_2_1_328
    assert set(events.NOTIFICATION_TYPES) - set(NOTIFICATION_TYPES_2_1_328) == {
        "elicitation_response", "elicitation_complete"}  # sent, not in the list
    assert set(events.NOTIFICATION_TYPES.values()) == {events.NEEDS_YOU, events.INFORMATIONAL}
    needs_you = events.NEEDS_YOU_NOTIFICATIONS
    assert needs_you == {
        "permission_prompt", "worker_permission_prompt", "agent_needs_input",
        "elicitation_dialog", "elicitation_url_dialog", "idle_prompt",
        "quota_auto_resume_stale"}  # "Usage limit reset: press enter to continue"
    for kind in NOTIFICATION_TYPES_2_1_328:
        expected = events.NEEDS_YOU if kind in needs_you else events.INFORMATIONAL
        assert events.notification_meaning(kind) == expected
    for odd in ("brand_new_type", "", None, 3, "Permission_Prompt"):
        assert events.notification_meaning(odd) == events.UNKNOWN_MEANING == "unknown"


# ---- docs/events.md ----------------------------------------------------------------------------

def test_the_docs_table_is_the_catalogue() -> None:
    rows = markdown_table(DOCS.read_text(), "## Event types")

    def yes(cell: str) -> bool:
        assert cell in ("yes", "no"), cell
        return cell == "yes"

    documented = []
    for event, namespace, registered, matcher, command_only, fields in rows:
        read = set() if fields == "—" else {code(f.strip()) for f in fields.split(",")}
        documented.append((code(event), namespace, yes(registered), yes(matcher),
                           yes(command_only), read))
    expected = [(e.name, e.namespace, e.installed, e.tool_matcher, e.command_hooks_only,
                 {f.name for f in msgspec.structs.fields(e.struct)} - COMMON)
                for e in events.CLAUDE_CODE_EVENTS]
    assert documented == expected


def test_the_docs_notification_table_is_the_catalogues() -> None:
    rows = markdown_table(DOCS.read_text(), "### Notification types")
    assert [(code(kind), meaning) for kind, meaning in rows] == list(
        events.NOTIFICATION_TYPES.items())


# ---- the viewer's hello ------------------------------------------------------------------------

def test_the_hello_carries_the_catalogue(home: Path) -> None:
    async def hello() -> dict:
        async with connect(status(home)["ws_url"], compression=None) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 30))

    with Daemon(home):
        message = asyncio.run(hello())
    assert message["type"] == "hello"
    assert {"version", "server_time", "last_seq"} <= set(message)
    assert message["namespaces"] == events.NAMESPACE_OF
    assert message["catalogue"] == events.catalogue_json()
    assert [e["event_type"] for e in message["catalogue"][:33]] == list(
        hooks_settings.KNOWN_EVENTS)
    assert message["notification_types"] == events.NOTIFICATION_TYPES


# ---- the real Claude Code ----------------------------------------------------------------------

def test_the_real_client_knows_exactly_the_catalogues_event_types() -> None:
    """An unknown hook event in a settings file makes an interactive Claude Code open a
    "Settings Warning" that names every key it ignored and lists the events it knows: with
    mpmd's 31 registrations and one made-up name, only the made-up one is ignored, and the
    list is the catalogue's, in its order."""
    sb = Sandbox()
    try:
        sb.install_hooks()
        registered = json.loads(sb.settings_path.read_text())["hooks"]
        assert list(registered) == list(hooks_settings.INSTALLED_EVENTS)
        sb.write_settings(lambda s: s["hooks"].update(
            PreToolCall=[{"hooks": [{"type": "command", "command": "true"}]}]))
        with ScriptedAPI(Script(turns=[say("hi")])) as api:
            terminal = Terminal(sb, api.url)
            try:
                screen = terminal.wait_for("Learn more", timeout=60)
            finally:
                terminal.close()
    finally:
        sb.cleanup()
    text = " ".join(screen.split())
    assert "Settings Warning" in text
    ignored = re.findall(r"hooks\.(\w+): Unknown hook event", text)
    assert ignored == ["PreToolCall"], text
    known = re.search(r"Valid events: (.*?) Learn more", text)
    assert known, text
    assert [n.strip() for n in known.group(1).split(",")] == list(hooks_settings.KNOWN_EVENTS)


def test_every_notification_type_of_the_real_client_has_a_meaning() -> None:
    """Claude Code's list of notification types, read out of the CLI itself: a version that
    adds one fails here until the catalogue gives it a meaning."""
    binary = require_claude()
    lists: set[bytes] = set()
    with open(binary, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        lists.update(m for m in re.findall(
            rb'\[(?:"[a-z_]+",)*"permission_prompt"(?:,"[a-z_]+")*\]', data)
            if b'"idle_prompt"' in m)
    assert len(lists) == 1, f"Claude Code's list of notification types not found in {binary}"
    assert json.loads(lists.pop()) == list(events.LISTED_NOTIFICATION_TYPES)
