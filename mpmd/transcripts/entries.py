"""Pure: what the transcript follower takes from one line of a Claude Code transcript.

A transcript line is one JSON object whose ``type`` says what it is. Checked against the
real CLI 2.1.328 (tests/fixtures/transcripts: a headless session with two Bash calls, one
failing, a subagent, a resumed second prompt; and the subagent's own transcript):

- ``user``: a prompt (``message.content`` a string, or text blocks) or tool results
  (``tool_result`` blocks, with the tool's own ``toolUseResult`` beside them). A person's
  prompt carries ``promptSource`` ("sdk", headless) and a ``promptId`` that its turn's
  tool results share. A subagent's transcript starts with a user entry holding the Agent
  call's prompt: ``isSidechain`` true, ``agentId`` set, no ``promptSource``, the
  ``promptId`` of the parent's turn.
- ``assistant``: one entry per content block of a model message, so a message with two
  tool calls is written twice under the same ``message.id``, each entry with the message's
  ``usage``. In 2.1.328 the entries of one message carry the same usage (they do not grow),
  and the session's ``cost-state`` counts each message once: usage is to be taken once a
  message id, never summed over entries (that deduplication is the caller's).
- ``cost-state``: the session's running totals (cost, tokens by model, lines, durations),
  written at the end of a turn; cumulative over the whole session, a resumed session's
  earlier runs included, and counting its subagents' messages. It has no timestamp: its
  place in the file orders it.
- Everything else (``attachment``, ``queue-operation``, ``last-prompt``, ``api-request*``,
  ``tools-used``, ``atis-latch``, ``mode``, ...) is not needed here.

Not in the fixtures, kept from what earlier releases are known to write: user entries that
Claude Code writes as if the person had (``isMeta`` context, a compacted conversation's
summary, ``promptSource`` "system" and ``origin`` for a background task's notification,
command output wrappers, interruption notes) are not prompts; a terminal prompt's
``promptSource`` is "typed".

The format changes with every release: entry types and fields not known here are passed
over, never an error, and a line that does not decode as expected (garbage, a field of
another type) gives nothing. Only the fields used are decoded (msgspec Structs, unknown
fields skipped by the decoder). A line that starts with its ``type``, as the CLI writes its
bookkeeping entries (api-request-shape, tens of KiB, and the like), is passed over on those
bytes alone, without decoding; user, assistant and attachment entries start with other
fields and are decoded once.
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_LINE = 4 * 1024 * 1024  # as mpmd.transcripts.reader: a longer line is not decoded
# A tool result's text kept: enough for an error's message or an output's beginning (the
# whole is in the transcript).
MAX_RESULT_TEXT = 8 * 1024
# A toolUseResult larger than this (encoded) is dropped: a file's content as Read returns
# it, a long command's output; PostToolUse's tool_response, which it resembles, has it.
MAX_TOOL_USE_RESULT = 64 * 1024

# Wrappers Claude Code writes as user entries around what is not a prompt: a slash
# command's or a ! command's output, the caveat before it, a background task's report.
_NOT_PROMPTS = ("<local-command-stdout>", "<local-command-stderr>", "<local-command-caveat>",
                "<bash-stdout>", "<bash-stderr>", "<task-notification>", "<system-reminder>",
                "[Request interrupted by user")


# ---- the facts


class Prompt(msgspec.Struct, frozen=True, kw_only=True):
    """A prompt: a person's (agent_id None), or the one a subagent was started with."""

    session_id: str
    prompt_id: str | None
    uuid: str
    text: str
    timestamp: str
    cwd: str | None
    agent_id: str | None


class ToolUse(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call the model made (one ``tool_use`` block)."""

    session_id: str
    tool_use_id: str
    name: str
    input: dict[str, Any]
    timestamp: str
    message_id: str | None
    agent_id: str | None
    cwd: str | None


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call's outcome (one ``tool_result`` block). ``content``: its text, cut to
    MAX_RESULT_TEXT; ``tool_use_result``: the tool's own record beside it, decoded, unless
    larger than MAX_TOOL_USE_RESULT."""

    session_id: str
    tool_use_id: str
    is_error: bool
    content: str
    timestamp: str
    prompt_id: str | None
    agent_id: str | None
    tool_use_result: Any = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """The tokens of a model message, from one of its entries: the same message id comes
    once per content block, with the same usage (take it once a message id)."""

    session_id: str
    message_id: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cache_creation_5m: int
    cache_creation_1h: int
    timestamp: str
    agent_id: str | None
    is_sidechain: bool


class ModelCost(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cache_creation_5m: int
    cache_creation_1h: int
    cost_usd: float


class CostState(msgspec.Struct, frozen=True, kw_only=True):
    """The session's totals so far: cumulative, a resumed session's earlier runs and its
    subagents included (a later one replaces an earlier one, it is not added to it)."""

    session_id: str
    total_cost_usd: float
    model_usage: dict[str, ModelCost]
    lines_added: int
    lines_removed: int
    total_duration_ms: int
    api_duration_ms: int
    has_unknown_model_cost: bool


Fact = Prompt | ToolUse | ToolResult | Usage | CostState


class Counts:
    """What ``parse`` saw, for the caller's counters."""

    __slots__ = ("lines", "facts", "malformed", "passed_over")

    def __init__(self) -> None:
        self.lines = 0
        self.facts = 0
        self.malformed = 0  # not JSON, not an object, a field of another type, too long
        self.passed_over = 0  # an entry of a type not needed (or not known)


# ---- what is decoded of a line (only the fields used; unknown ones are skipped)


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None


class _Block(msgspec.Struct):
    type: str = ""
    text: Any = None  # text
    id: str | None = None  # tool_use
    name: str | None = None
    input: Any = None
    tool_use_id: str | None = None  # tool_result
    content: Any = None
    is_error: bool | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    content: str | list[_Block] | None = None
    usage: _Usage | None = None


class _Conversation(msgspec.Struct, rename="camel"):
    """A user or assistant entry (one Struct for both: the line is decoded once)."""

    type: str = ""
    session_id: str = ""
    uuid: str = ""
    timestamp: str = ""
    cwd: str | None = None
    agent_id: str | None = None
    prompt_id: str | None = None
    is_sidechain: bool = False
    is_meta: bool = False
    is_compact_summary: bool = False
    is_visible_in_transcript_only: bool = False
    prompt_source: str | None = None
    origin: Any = None
    message: _Message | None = None
    tool_use_result: msgspec.Raw = msgspec.Raw(b"null")


class _ModelUsage(msgspec.Struct, rename="camel"):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_ephemeral_5m_input_tokens: int = 0
    cache_creation_ephemeral_1h_input_tokens: int = 0
    cost_usd: float = msgspec.field(default=0.0, name="costUSD")


class _CostState(msgspec.Struct, rename="camel"):
    session_id: str = ""
    total_cost_usd: float = msgspec.field(default=0.0, name="totalCostUSD")
    model_usage: dict[str, _ModelUsage] = {}
    total_lines_added: int = 0
    total_lines_removed: int = 0
    total_duration: int = 0
    total_api_duration: int = msgspec.field(default=0, name="totalAPIDuration")
    has_unknown_model_cost: bool = False


class _Type(msgspec.Struct):
    type: Any = None


_conversation = msgspec.json.Decoder(_Conversation)
_cost_state = msgspec.json.Decoder(_CostState)
_type_only = msgspec.json.Decoder(_Type)
_any = msgspec.json.Decoder()

_WANTED = frozenset({"user", "assistant", "cost-state"})
_TYPE_FIRST = b'{"type":"'
_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


def parse(line: bytes, counts: Counts | None = None) -> list[Fact]:
    """The facts in one transcript line (without its newline); [] for anything else.
    Never raises."""
    if counts is not None:
        counts.lines += 1
    kind = _leading_type(line)
    if kind is not None and kind not in _WANTED:
        _count(counts, "passed_over")
        return []
    if len(line) > MAX_LINE:
        _count(counts, "malformed")
        return []
    try:
        if kind == "cost-state":
            facts: list[Fact] = [_cost_fact(_cost_state.decode(line))]
        else:
            entry = _conversation.decode(line)
            if entry.type == "user":
                facts = _user_facts(entry)
            elif entry.type == "assistant":
                facts = _assistant_facts(entry)
            elif entry.type == "cost-state":  # not written first: decode as one
                facts = [_cost_fact(_cost_state.decode(line))]
            else:
                _count(counts, "passed_over")
                return []
    except _ERRORS:
        # Malformed, or an entry of a type not needed whose fields differ from ours.
        _count(counts, "passed_over" if kind is None and _is_other_type(line) else "malformed")
        return []
    if counts is not None:
        counts.facts += len(facts)
    return facts


def _count(counts: Counts | None, name: str) -> None:
    if counts is not None:
        setattr(counts, name, getattr(counts, name) + 1)


def _leading_type(line: bytes) -> str | None:
    """The entry's type when the line starts with it (as the CLI writes most of its
    bookkeeping entries), read off the bytes; None otherwise."""
    if not line.startswith(_TYPE_FIRST):
        return None
    end = line.find(b'"', len(_TYPE_FIRST))
    name = line[len(_TYPE_FIRST):end]
    if end < 0 or b"\\" in name:  # escaped: let the decoder read it
        return None
    return name.decode("ascii", "replace")


def _is_other_type(line: bytes) -> bool:
    try:
        kind = _type_only.decode(line).type
    except _ERRORS:
        return False
    return isinstance(kind, str) and kind not in _WANTED


def _user_facts(entry: _Conversation) -> list[Fact]:
    message = entry.message
    if message is None:
        return []
    content = message.content
    agent_id = entry.agent_id
    if isinstance(content, list) and any(b.type == "tool_result" for b in content):
        tool_use_result = _tool_use_result(entry.tool_use_result)
        return [ToolResult(session_id=entry.session_id, tool_use_id=b.tool_use_id,
                           is_error=bool(b.is_error), content=_text(b.content),
                           timestamp=entry.timestamp, prompt_id=entry.prompt_id,
                           agent_id=agent_id, tool_use_result=tool_use_result)
                for b in content if b.type == "tool_result" and b.tool_use_id]
    text = _prompt_text(content)
    if text is None or not _is_prompt(entry, text):
        return []
    return [Prompt(session_id=entry.session_id, prompt_id=entry.prompt_id, uuid=entry.uuid,
                   text=text, timestamp=entry.timestamp, cwd=entry.cwd, agent_id=agent_id)]


def _prompt_text(content: str | list[_Block] | None) -> str | None:
    if isinstance(content, str):
        return content
    if not content:
        return None
    texts = [b.text for b in content if b.type == "text" and isinstance(b.text, str)]
    return "\n".join(texts) if texts else None


def _is_prompt(entry: _Conversation, text: str) -> bool:
    """A person's prompt, or a subagent's starting one; not what Claude Code writes as if
    the person had: context it adds (isMeta), a compacted conversation's summary, a
    background task's notification, a command's output, an interruption's note."""
    if entry.is_meta or entry.is_compact_summary or entry.is_visible_in_transcript_only:
        return False
    if entry.prompt_source == "system" or entry.origin is not None:
        return False
    stripped = text.lstrip()
    return bool(stripped) and not stripped.startswith(_NOT_PROMPTS)


def _assistant_facts(entry: _Conversation) -> list[Fact]:
    message = entry.message
    if message is None:
        return []
    facts: list[Fact] = []
    if isinstance(message.content, list):
        for b in message.content:
            if b.type == "tool_use" and b.id and b.name:
                facts.append(ToolUse(
                    session_id=entry.session_id, tool_use_id=b.id, name=b.name,
                    input=b.input if isinstance(b.input, dict) else {},
                    timestamp=entry.timestamp, message_id=message.id, agent_id=entry.agent_id,
                    cwd=entry.cwd))
    usage = message.usage
    if usage is not None:
        cache = usage.cache_creation or _CacheCreation()
        facts.append(Usage(
            session_id=entry.session_id, message_id=message.id, model=message.model,
            input_tokens=usage.input_tokens or 0, output_tokens=usage.output_tokens or 0,
            cache_read_input_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
            cache_creation_5m=cache.ephemeral_5m_input_tokens or 0,
            cache_creation_1h=cache.ephemeral_1h_input_tokens or 0,
            timestamp=entry.timestamp, agent_id=entry.agent_id,
            is_sidechain=entry.is_sidechain))
    return facts


def _cost_fact(state: _CostState) -> CostState:
    return CostState(
        session_id=state.session_id, total_cost_usd=state.total_cost_usd,
        model_usage={
            model: ModelCost(
                input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                cache_read_input_tokens=u.cache_read_input_tokens,
                cache_creation_input_tokens=u.cache_creation_input_tokens,
                cache_creation_5m=u.cache_creation_ephemeral_5m_input_tokens,
                cache_creation_1h=u.cache_creation_ephemeral_1h_input_tokens,
                cost_usd=u.cost_usd)
            for model, u in state.model_usage.items()},
        lines_added=state.total_lines_added, lines_removed=state.total_lines_removed,
        total_duration_ms=state.total_duration, api_duration_ms=state.total_api_duration,
        has_unknown_model_cost=state.has_unknown_model_cost)


def _text(content: Any) -> str:
    """A tool result's text: a string, or its text blocks' (images and the like left
    out), cut to MAX_RESULT_TEXT."""
    if isinstance(content, str):
        return content[:MAX_RESULT_TEXT]
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    size = 0
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text" and \
                isinstance(block.get("text"), str):
            parts.append(block["text"])
            size += len(block["text"])
            if size >= MAX_RESULT_TEXT:
                break
    return "\n".join(parts)[:MAX_RESULT_TEXT]


def _tool_use_result(raw: msgspec.Raw) -> Any:
    if len(raw) > MAX_TOOL_USE_RESULT:
        return None
    try:
        return _any.decode(raw)
    except _ERRORS:
        return None
