"""The shapes of events: Claude Code's hook payloads in, the stored event out.

Hook payloads decode into one tagged union of Structs (tag: ``hook_event_name``), one Decoder
built once. Every field is optional and loosely typed where Claude Code is loose: the typed
view exists to read fields for enrichment, never to reject an event. What is *kept* is the
original payload (redacted), so unknown fields and unknown event types are never dropped.

The catalogue below the Structs is the one list of event types (Claude Code's 33 and mpmd's
own) and what mpmd knows about each; every other list of event names derives from it.

The stored event is one JSON object per line in the journal (docs/events.md). ``seq`` is its
first field on purpose: readers find it by looking at the line's first bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import msgspec

# ---- the event as a hook framed it (mpm_hook.wire; decoded by mpmd.ingest.framing) --------
DecisionValue = str | int | float | bool | None


class EventFrame(msgspec.Struct, array_like=True, frozen=True):
    """An event frame's body (see mpm_hook.wire for the layout). ``decision`` is the
    optional sixth element: what a policy rule decided (docs/protocol.md); frames without
    it, as every hook before policies wrote them, decode with None. Further trailing
    elements, from a newer hook, are ignored."""

    version: int
    id: bytes
    ts_ns: int
    payload: bytes
    original_size: int
    decision: dict[str, DecisionValue] | None = None


class CommonFields(msgspec.Struct, kw_only=True):
    """Fields common to every hook event."""

    session_id: str | None = None
    transcript_path: str | None = None
    cwd: str | None = None
    permission_mode: str | None = None
    prompt_id: str | None = None
    agent_id: str | None = None
    agent_type: str | None = None
    effort: Any = None


class HookEvent(CommonFields, kw_only=True, tag_field="hook_event_name"):
    """A known event type: the tag selects the Struct."""


class ToolEvent(HookEvent, kw_only=True):
    tool_name: str | None = None
    tool_input: Any = None
    tool_use_id: str | None = None


class SessionStart(HookEvent, tag="SessionStart"):
    source: str | None = None
    model: str | None = None


class Setup(HookEvent, tag="Setup"):
    trigger: str | None = None


class SessionEnd(HookEvent, tag="SessionEnd"):
    reason: str | None = None


class UserPromptSubmit(HookEvent, tag="UserPromptSubmit"):
    prompt: str | None = None


class UserPromptExpansion(HookEvent, tag="UserPromptExpansion"):
    expansion_type: str | None = None
    command_name: str | None = None
    command_args: Any = None
    command_source: str | None = None
    prompt: str | None = None


class PreToolUse(ToolEvent, tag="PreToolUse"):
    pass


class PermissionRequest(ToolEvent, tag="PermissionRequest"):
    permission_suggestions: Any = None


class PermissionDenied(ToolEvent, tag="PermissionDenied"):
    reason: Any = None


class PostToolUse(ToolEvent, tag="PostToolUse"):
    tool_response: Any = None
    duration_ms: float | None = None


class PostToolUseFailure(ToolEvent, tag="PostToolUseFailure"):
    error: Any = None
    is_interrupt: bool | None = None
    duration_ms: float | None = None


class PostToolBatch(HookEvent, tag="PostToolBatch"):
    tool_calls: Any = None


class Notification(HookEvent, tag="Notification"):
    message: str | None = None
    title: str | None = None
    notification_type: str | None = None


class MessageDisplay(HookEvent, tag="MessageDisplay"):
    turn_id: str | None = None
    message_id: str | None = None
    index: int | None = None
    final: bool | None = None
    delta: Any = None


class SubagentStart(HookEvent, tag="SubagentStart"):
    pass


class SubagentStop(HookEvent, tag="SubagentStop"):
    stop_hook_active: bool | None = None
    agent_transcript_path: str | None = None
    last_assistant_message: Any = None


class _TaskEvent(HookEvent, kw_only=True):
    task_id: str | None = None
    task_subject: str | None = None
    task_description: str | None = None
    teammate_name: str | None = None
    team_name: str | None = None


class TaskCreated(_TaskEvent, tag="TaskCreated"):
    pass


class TaskCompleted(_TaskEvent, tag="TaskCompleted"):
    pass


class TeammateIdle(HookEvent, tag="TeammateIdle"):
    teammate_name: str | None = None
    team_name: str | None = None


class Stop(HookEvent, tag="Stop"):
    stop_hook_active: bool | None = None
    last_assistant_message: Any = None
    background_tasks: Any = None


class StopFailure(HookEvent, tag="StopFailure"):
    error: Any = None
    error_details: Any = None
    last_assistant_message: Any = None


class InstructionsLoaded(HookEvent, tag="InstructionsLoaded"):
    file_path: str | None = None
    memory_type: str | None = None
    load_reason: str | None = None


class ConfigChange(HookEvent, tag="ConfigChange"):
    source: str | None = None
    file_path: str | None = None


class CwdChanged(HookEvent, tag="CwdChanged"):
    old_cwd: str | None = None
    new_cwd: str | None = None


class DirectoryAdded(HookEvent, tag="DirectoryAdded"):
    directory: str | None = None
    source: str | None = None


class FileChanged(HookEvent, tag="FileChanged"):
    file_path: str | None = None
    event: str | None = None


class WorktreeCreate(HookEvent, tag="WorktreeCreate"):
    name: str | None = None


class WorktreeRemove(HookEvent, tag="WorktreeRemove"):
    worktree_path: str | None = None


class PreCompact(HookEvent, tag="PreCompact"):
    trigger: str | None = None
    custom_instructions: Any = None


class PostCompact(HookEvent, tag="PostCompact"):
    trigger: str | None = None
    compact_summary: Any = None


class _ModelSwitch(HookEvent, kw_only=True):
    from_model: Any = None
    to_model: Any = None
    requested_model: Any = None  # what was asked for (/model, the model picker, set_model)
    source: Any = None
    context_tokens: Any = None  # 2.1.328 adds these two and an estimated re-cache cost
    prompt_cache_warm: Any = None


class PreModelSwitch(_ModelSwitch, tag="PreModelSwitch"):
    """Before a requested switch; a hook could block it (mpmd's never does)."""


class PostModelSwitch(_ModelSwitch, tag="PostModelSwitch"):
    """After the session's model changed, for any cause."""


class Elicitation(HookEvent, tag="Elicitation"):
    mcp_server_name: str | None = None
    message: Any = None
    mode: str | None = None
    requested_schema: Any = None


class ElicitationResult(HookEvent, tag="ElicitationResult"):
    mcp_server_name: str | None = None
    mode: str | None = None
    action: str | None = None
    content: Any = None


class RemoteAnswer(HookEvent, tag="RemoteAnswer"):
    """mpmd's own event, not Claude Code's: how a permission request held for the viewer
    ended (mpmd.serve.approvals; stored with source "daemon")."""

    tool_name: str | None = None
    answer_to: int | None = None  # the seq of the PermissionRequest
    behavior: str | None = None  # allow, deny, or none (Claude Code asks in the terminal)
    message: str | None = None
    answered_by: str | None = None  # viewer, link, timeout, no-viewer, daemon-stopping
    answered_from: str | None = None  # which viewer (its client id and browser)
    rule: str | None = None  # the policy rule that sent the request to the viewer
    added_rule: str | None = None  # the allow rule "Always allow" wrote


class PermissionAnswered(HookEvent, tag="PermissionAnswered"):
    """mpmd's own event, not Claude Code's: a permission prompt the person answered no to
    (or cancelled) in the terminal, for which Claude Code fires no hook; read off the
    session's transcript (mpmd.transcripts.prompt_watch; stored with source "daemon")."""

    tool_name: str | None = None
    tool_use_id: str | None = None
    answer_to: int | None = None  # the seq of the event that opened the wait
    behavior: str | None = None  # deny
    answered_by: str | None = None  # terminal
    message: str | None = None  # what Claude Code told the model


class ModelUsage(HookEvent, tag="ModelUsage"):
    """mpmd's own event, not Claude Code's: one API response's tokens, read off the session's
    transcript (mpmd.transcripts.follower; stored with source "transcript"), once per
    message id. ``cost_usd`` is priced by mpmd's table (mpmd.transcripts.prices), None for
    a model it has no price for."""

    message_id: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cost_usd: float | None = None
    at: str | None = None  # when Claude Code wrote the response to the transcript


class CostReport(HookEvent, tag="CostReport"):
    """mpmd's own event, not Claude Code's: Claude Code's own accounting of a session (its
    transcript's ``cost-state``), cumulative over every run of the session (a resumed one
    too), as of ``as_of``. Stored with source "transcript"."""

    total_cost_usd: float | None = None
    model_usage: Any = None  # per model: tokens by kind and costUSD, as Claude Code wrote it
    lines_added: int | None = None
    lines_removed: int | None = None
    duration_ms: int | None = None
    api_duration_ms: int | None = None
    has_unknown_model_cost: bool | None = None
    as_of: str | None = None  # the end of the run it accounts for


class UnknownEvent(CommonFields, kw_only=True):
    """An event type this version does not know (Claude Code adds them often), or a known
    one whose fields did not have the expected types. Only the common fields are read;
    the full payload is kept as it came."""

    hook_event_name: str = "unknown"


# --- the catalogue -------------------------------------------------------------------------------
# Every event type mpmd knows, defined once: the Struct above gives the name (its tag) and the
# fields mpmd reads, the row below the facts mpmd needs about it. Everything else derives from
# this table: the decoder, the lists install-hooks and doctor use (mpmd.ops.hooks_settings), the
# viewer's namespaces and its `hello`, and the table in docs/events.md (tests/test_catalogue.py
# fails when any of them disagrees, or when the installed Claude Code knows an event this
# table does not).

CLAUDE_CODE = "claude-code"
MPMD = "mpmd"

# The viewer's coarse grouping of event types (docs/viewer.md); unknown types and payloads
# that are not events are "system".
NAMESPACES = ("session", "tool", "agent", "notification", "system")


@dataclass(frozen=True)
class EventType:
    """One row of the catalogue."""

    struct: type[HookEvent]
    namespace: str  # one of NAMESPACES
    tool_matcher: bool = False  # its hook groups take a tool-name matcher (ours is "*")
    installed: bool = True  # `mpmd install-hooks` registers a hook for it
    command_hooks_only: bool = False  # Claude Code runs only command (and mcp_tool) hooks
    origin: str = CLAUDE_CODE  # or MPMD: mpmd's own events (source "daemon" or "transcript")
    name: str = field(init=False)  # the Struct's tag: the `hook_event_name`

    def __post_init__(self) -> None:
        tag = self.struct.__struct_config__.tag
        if not isinstance(tag, str) or self.namespace not in NAMESPACES:
            raise ValueError(f"bad catalogue row for {self.struct.__name__}")
        object.__setattr__(self, "name", tag)


# Claude Code's own order (its list of hook events, 2.1.328). A WorktreeCreate/WorktreeRemove
# hook does not observe, it REPLACES Claude Code's own git worktree creation/removal (the
# hook must make the worktree and print its path): an observer there would break
# `claude --worktree`, so install-hooks never registers them and removes entries of ours there.
CLAUDE_CODE_EVENTS: tuple[EventType, ...] = (
    #         struct              namespace       tool_matcher installed command_hooks_only
    EventType(PreToolUse,         "tool",         True),
    EventType(PostToolUse,        "tool",         True),
    EventType(PostToolUseFailure, "tool",         True),
    EventType(PostToolBatch,      "tool"),
    EventType(Notification,       "notification"),
    EventType(UserPromptSubmit,   "session"),
    EventType(UserPromptExpansion, "session"),
    EventType(SessionStart,       "session",      False,       True,     True),
    EventType(SessionEnd,         "session"),
    EventType(Stop,               "session"),
    EventType(StopFailure,        "session"),
    EventType(SubagentStart,      "agent"),
    EventType(SubagentStop,       "agent"),
    EventType(PreCompact,         "session"),
    EventType(PostCompact,        "session"),
    EventType(PreModelSwitch,     "session"),
    EventType(PostModelSwitch,    "session"),
    EventType(PermissionRequest,  "tool",         True),
    EventType(PermissionDenied,   "tool",         True),
    EventType(Setup,              "session",      False,       True,     True),
    EventType(TeammateIdle,       "agent"),
    EventType(TaskCreated,        "agent"),
    EventType(TaskCompleted,      "agent"),
    EventType(Elicitation,        "notification"),
    EventType(ElicitationResult,  "notification"),
    EventType(ConfigChange,       "system"),
    EventType(WorktreeCreate,     "system",       False,       False),
    EventType(WorktreeRemove,     "system",       False,       False),
    EventType(InstructionsLoaded, "system"),
    EventType(CwdChanged,         "system"),
    EventType(FileChanged,        "system"),
    EventType(DirectoryAdded,     "system"),
    EventType(MessageDisplay,     "session"),
)  # fmt: skip

# mpmd's own events: stored by the daemon, never registered as hooks with Claude Code.
MPMD_EVENTS: tuple[EventType, ...] = (
    EventType(RemoteAnswer, "tool", installed=False, origin=MPMD),
    EventType(PermissionAnswered, "tool", installed=False, origin=MPMD),
    EventType(ModelUsage, "session", installed=False, origin=MPMD),
    EventType(CostReport, "session", installed=False, origin=MPMD),
)

CATALOGUE: tuple[EventType, ...] = CLAUDE_CODE_EVENTS + MPMD_EVENTS
EVENT_TYPES: dict[str, EventType] = {e.name: e for e in CATALOGUE}

# The tagged union the decoder reads (tag: hook_event_name).
KnownEvent: Any = Union[tuple(e.struct for e in CATALOGUE)]  # noqa: UP007 (built, not written)

KNOWN_EVENT_TYPES: frozenset[str] = frozenset(EVENT_TYPES)
MPMD_EVENT_TYPES: frozenset[str] = frozenset(e.name for e in MPMD_EVENTS)
CLAUDE_EVENT_TYPES: frozenset[str] = frozenset(e.name for e in CLAUDE_CODE_EVENTS)

_known_decoder = msgspec.json.Decoder(KnownEvent)

NAMESPACE_OF: dict[str, str] = {e.name: e.namespace for e in CATALOGUE}


def catalogue_json() -> list[dict[str, str]]:
    """The catalogue as the viewer's `hello` sends it: every known event type in order."""
    return [{"event_type": e.name, "namespace": e.namespace, "origin": e.origin}
            for e in CATALOGUE]


# --- notification types ---------------------------------------------------------------------------
# What a Notification's `notification_type` means (2.1.328's list, and the text Claude Code
# sends with each). A type not listed is kept and shown as it comes; its meaning is UNKNOWN.

NEEDS_YOU = "needs you"  # a person must answer or act before the session goes on
INFORMATIONAL = "informational"
UNKNOWN_MEANING = "unknown"

# Claude Code's own list of types, in its order (tests/test_catalogue.py reads it out of the
# CLI), then the types it sends from elsewhere (seen with 2.1.328).
LISTED_NOTIFICATION_TYPES: dict[str, str] = {
    "permission_prompt": NEEDS_YOU,  # "Claude needs your permission" (a prompt is open)
    "idle_prompt": NEEDS_YOU,  # "Claude is waiting for your input"
    "auth_success": INFORMATIONAL,  # "Claude Code login successful"
    "elicitation_dialog": NEEDS_YOU,  # an MCP server asks for input
    "agent_needs_input": NEEDS_YOU,  # "... needs your choice" (a dialog is open)
    "agent_completed": INFORMATIONAL,  # "<agent> finished" / "<agent> failed"
    "elicitation_url_dialog": NEEDS_YOU,  # an MCP server asks you to open a URL
    "worker_permission_prompt": NEEDS_YOU,  # "<worker> needs permission for <tool>"
    "push_notification": INFORMATIONAL,  # a message Claude chose to push to you
    "computer_use_enter": INFORMATIONAL,  # Claude starts using your computer
    "computer_use_exit": INFORMATIONAL,  # "Claude is done using your computer"
    "quota_auto_resume_fired": INFORMATIONAL,  # "Usage limit available: Claude is continuing"
    "quota_auto_resume_stale": NEEDS_YOU,  # "Usage limit reset: press enter to continue"
    "quota_auto_resume_disabled": INFORMATIONAL,  # "the task will not resume on its own"
    "model_refusal_fallback": INFORMATIONAL,  # the model refused; another model took over
    "auth_storage_failure": INFORMATIONAL,  # "login needs attention: credentials not saved"
    "plugin_notification": INFORMATIONAL,  # a plugin's own message
}
NOTIFICATION_TYPES: dict[str, str] = {
    **LISTED_NOTIFICATION_TYPES,
    "elicitation_response": INFORMATIONAL,  # 'Elicitation response for server "x": accept'
    "elicitation_complete": INFORMATIONAL,  # an MCP server's URL elicitation finished
}

NEEDS_YOU_NOTIFICATIONS: frozenset[str] = frozenset(
    t for t, meaning in NOTIFICATION_TYPES.items() if meaning == NEEDS_YOU
)


def notification_meaning(notification_type: object) -> str:
    """NEEDS_YOU, INFORMATIONAL, or UNKNOWN_MEANING (a type this version does not know, or
    none): the notification is kept and shown as it came all the same."""
    if not isinstance(notification_type, str):
        return UNKNOWN_MEANING
    return NOTIFICATION_TYPES.get(notification_type, UNKNOWN_MEANING)


_common_decoder = msgspec.json.Decoder(dict[str, Any])


_TAG_OF: dict[type, str] = {e.struct: e.name for e in CATALOGUE}


def event_type_of(event: CommonFields) -> str:
    tag = _TAG_OF.get(type(event))  # the common case, one lookup
    if tag is not None:
        return tag
    if isinstance(event, UnknownEvent):
        return event.hook_event_name
    own_tag = event.__struct_config__.tag
    return own_tag if isinstance(own_tag, str) else "unknown"


# Status of a stored event: what the daemon could make of the bytes it was given.
OK = "ok"  # a JSON object with a known event type
UNKNOWN_TYPE = "unknown_type"  # a JSON object, event type new to us (kept whole)
SCHEMA_MISMATCH = "schema_mismatch"  # known event type, a field of an unexpected type
NOT_OBJECT = "not_object"  # valid JSON, but not an object
MALFORMED = "malformed"  # not JSON (or cut by the hook): raw bytes kept in `raw`
EMPTY = "empty"  # nothing on stdin
TRUNCATED = "truncated"  # the hook cut an oversized payload: what arrived is in `raw`


def _common_fields(obj: dict[str, Any]) -> UnknownEvent:
    def text(key: str) -> str | None:
        value = obj.get(key)
        return value if isinstance(value, str) else None

    name = obj.get("hook_event_name")
    return UnknownEvent(
        hook_event_name=name if isinstance(name, str) and name else "unknown",
        session_id=text("session_id"),
        transcript_path=text("transcript_path"),
        cwd=text("cwd"),
        permission_mode=text("permission_mode"),
        prompt_id=text("prompt_id"),
        agent_id=text("agent_id"),
        agent_type=text("agent_type"),
    )


# How deep a payload's arrays and objects may nest. Every reader of a stored event (the
# decoders here, redaction, the sessions table, the broadcaster, the index, the viewer's
# JSON.parse) walks nesting on the stack: msgspec itself raises RecursionError at ~1,000
# levels, and a step that runs a few frames deeper fails sooner. 128 is serde_json's default,
# far above what Claude Code sends (its payloads nest under 20); a payload nested deeper is
# kept whole as text (`malformed`, in `raw`), never decoded.
MAX_DEPTH = 128

# Only brackets and quotes matter for depth; closers and openers of both kinds are one
# kind each once the structure is known to be the question (a mismatch is malformed JSON
# that the decoder reports).
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def deeper_than(raw: bytes, limit: int) -> bool:
    """True when JSON text nests arrays and objects more than ``limit`` levels deep, found
    without decoding it and without recursion: bytes operations in C only (~1 ms for a
    150 KB tool result full of escapes and brackets in its strings; 8 MB of hostile
    nesting in well under a second). Text that is not JSON gets an answer all the same
    (brackets that never close count as depth); the decoder then says what is wrong."""
    # Escapes go first: a backslash pair is one escaped backslash wherever it stands (JSON
    # has backslashes only inside strings), so after them every \" left is an escaped
    # quote. Then every other quote delimits a string, and the brackets between the
    # strings are the structure.
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    structure = b"".join(text.split(b'"')[::2]).translate(_ONE_KIND)
    # Each pass removes every innermost pair: what nests d levels is gone after d passes,
    # and after k passes what is left must nest more than limit - k to be too deep.
    for done in range(limit):
        left = limit - done
        if structure.count(b"[") <= left:  # no deeper than it has openers
            return False
        if b"[" * (left + 1) in structure:  # hostile nesting: mostly one run of openers
            return True
        inner = structure.replace(b"[]", b"")
        if len(inner) == len(structure):  # unbalanced, and more openers than the limit
            return True
        structure = inner
    return b"[" in structure


def parse_payload(raw: bytes) -> tuple[CommonFields | None, str, str | None]:
    """(typed event or None, status, error message) for the bytes a hook read on stdin.

    Never raises: every input maps to one of the statuses above.
    """
    if not raw.strip():
        return None, EMPTY, "empty payload"
    # No more openers than the bound, no deeper either: two C scans decide most payloads.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and deeper_than(raw, MAX_DEPTH):
        return None, MALFORMED, (f"payload nests more than {MAX_DEPTH} levels deep, the "
                                 "most mpmd decodes: kept as text in raw")
    try:
        # JSON is UTF-8, and the stored line embeds the payload's bytes: check them all,
        # since a typed decode skips the fields it does not read without looking inside
        # (found by hypothesis: `{"hook_event_name": "Stop", "x": "\xff"}` passed as ok).
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, MALFORMED, f"payload is not UTF-8: {exc}"
    try:
        return _known_decoder.decode(raw), OK, None
    except msgspec.ValidationError as exc:
        first_error = str(exc)
    except msgspec.DecodeError as exc:
        return None, MALFORMED, str(exc)
    # Valid JSON, but not one of the known shapes: find out which way it differs.
    try:
        obj = _common_decoder.decode(raw)
    except msgspec.ValidationError:
        # A typed decode stops at the first value of the wrong type, before it looks past
        # the value: `0\x00` fails as "not an object" though it is not JSON at all.
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            return None, MALFORMED, str(exc)
        return None, NOT_OBJECT, "payload is JSON but not an object"
    except msgspec.DecodeError as exc:
        return None, MALFORMED, str(exc)
    event = _common_fields(obj)
    if event.hook_event_name in KNOWN_EVENT_TYPES:
        return event, SCHEMA_MISMATCH, first_error
    return event, UNKNOWN_TYPE, None


class Enrichment(msgspec.Struct, kw_only=True):
    """What mpmd derives from an event (mpmd.model.enrich); flattened into the stored event."""

    operation: str = "metadata"  # read | write | execute | network | metadata
    risk: str = "low"  # low | medium | high
    risk_reason: str | None = None
    file_path: str | None = None
    content_length: int | None = None
    summary: str = ""


class StoredEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One line of the journal. Field order is the JSON key order: ``seq`` must stay first."""

    seq: int
    id: str  # the hook's idempotency id, 32 hex digits
    event_type: str
    session_id: str | None = None
    timestamp: str  # when the hook ran (ISO 8601 UTC, microseconds)
    received_at: str  # when the daemon stored it
    source: str  # hook | spool (always written: jq filters on it)
    status: str  # always written
    error: str | None = None
    cwd: str | None = None
    agent_id: str | None = None
    tool_name: str | None = None
    tool_use_id: str | None = None
    operation: str
    risk: str
    risk_reason: str | None = None
    file_path: str | None = None
    content_length: int | None = None
    summary: str
    redactions: int = 0
    original_size: int | None = None  # only when the hook cut an oversized payload
    payload: Any = None  # the original payload, redacted (msgspec.Raw when untouched)
    raw: str | None = None  # payload bytes that are not a JSON value (redacted)
    raw_encoding: str | None = None  # "utf-8" (raw is the text) or "base64"


class StoredEventView(msgspec.Struct, kw_only=True):
    """The subset of a stored event the CLI and readers need; decoding ignores the rest."""

    seq: int
    id: str
    event_type: str
    session_id: str | None = None
    timestamp: str
    status: str = OK
    summary: str = ""
    tool_name: str | None = None
    risk: str = "low"
