"""The search query language (mpmd.history.query, docs/query.md): the parser, its errors, and the
SQL it makes, checked against a brute-force evaluator of the documented semantics over a
real index."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mpmd.history.index import TEXT_FIELDS, Index, connect_read_only, fetch_lines, row_of
from mpmd.history.query import (
    COMPARISONS,
    FIELDS,
    MAX_DEPTH,
    MAX_TERMS,
    OPERATIONS,
    SCOPES,
    And,
    Compare,
    Everything,
    Field,
    Not,
    Or,
    Query,
    QueryError,
    Text,
    Time,
    compile,
    parse,
    to_sql,
)
from mpmd.model import events, record
from mpmd.model.events import EventFrame
from tests.utils import ROOT, examples, fixture_payloads, short_tempdir

DAY_MS = 86_400_000
NOW_MS = 1_795_219_200_000  # 2026-11-21T00:00:00Z
BASE_NS = (NOW_MS - 3 * DAY_MS) * 1_000_000  # the events span the three days before "now"
STEP_NS = 1_711_234_567_891  # ~28.5 minutes, not a whole number of ms
SESSIONS = ("9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71", "9f1c2b7f-0000-4000-8000-000000000001",
            "a0e1b2c3-1111-4222-8333-444455556666", None)
CWDS = ("/home/dev/shop", "/home/dev/shop-api", "/srv/[lab] tools")
# Stored event types (docs/events.md): the known ones, a status for what is not an object,
# "unknown" for an object without hook_event_name.
EVENT_TYPES = sorted(events.KNOWN_EVENT_TYPES) + [
    "empty", "malformed", "not_object", "truncated", "unknown"]
STATUSES = ("ok", "unknown_type", "schema_mismatch", "not_object", "malformed", "truncated",
            "empty")


# --- the events ------------------------------------------------------------------------

def _extra_payloads() -> list[tuple[bytes, int]]:
    """(payload, original size) for statuses and shapes the fixture file lacks."""
    cut = b'{"hook_event_name": "UserPromptSubmit", "prompt": "cut here by the hook'
    plain = [
        b"", b"not json at all { login", b"[1, 2, 3]",
        b'{"hook_event_name": "pretooluse", "session_id": "zz-lower", "cwd": "/tmp/x"}',
        b'{"session_id": "9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71"}',
        b'{"hook_event_name": "Stop", "session_id": "9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71-x"}',
        b'{"hook_event_name": "PreToolUse", "tool_name": 5, "cwd": "/home/dev/shop"}',
        json.dumps({"hook_event_name": "PreToolUse", "session_id": SESSIONS[2], "cwd": CWDS[2],
                    "tool_name": "mcp__lab__a[b]*c",
                    "tool_input": {"file_path": "/srv/[lab] tools/we*ird?.py"}}).encode(),
        json.dumps({"hook_event_name": "UserPromptSubmit", "session_id": SESSIONS[1],
                    "prompt": "Überprüfe café naïve résumé 東京 ①② and login \"quoted\""},
                   ensure_ascii=False).encode(),
    ]
    return [(p, len(p)) for p in plain] + [(cut, len(cut) + 1000)] + [
        (json.dumps(p).encode(), len(json.dumps(p).encode())) for p in _usage_payloads()]


def _usage_payloads() -> list[dict[str, Any]]:
    """What the transcript follower journals of three sessions (mpmd.transcripts.follower):
    responses, one of a model with no price, and Claude Code's cost reports."""
    def response(session: str, at: str, model: str, usd: float | None,
                 tokens: tuple[int, int, int, int]) -> dict[str, Any]:
        return {"hook_event_name": "ModelUsage", "session_id": session, "model": model,
                "message_id": f"msg_{session[:4]}{at[11:13]}", "prompt_id": None,
                "input_tokens": tokens[0], "output_tokens": tokens[1],
                "cache_read_input_tokens": tokens[2], "cache_creation_input_tokens": tokens[3],
                "cost_usd": usd, "at": at}

    def report(session: str, usd: float, as_of: str) -> dict[str, Any]:
        return {"hook_event_name": "CostReport", "session_id": session, "total_cost_usd": usd,
                "model_usage": {}, "as_of": as_of}

    day = "2026-11-19T"
    return [
        response(SESSIONS[0], day + "10:00:00Z", "claude-opus-5-5", 0.4, (1000, 50, 20000, 300)),
        response(SESSIONS[0], day + "11:00:00Z", "claude-opus-5-5", 0.3, (800, 40, 0, 0)),
        report(SESSIONS[0], 0.5, day + "11:30:00Z"),  # replaced by the next
        report(SESSIONS[0], 1.0, day + "11:30:00Z"),
        response(SESSIONS[0], day + "12:00:00Z", "claude-haiku-5", 0.5, (100, 10, 0, 0)),
        response(SESSIONS[1], day + "10:00:00Z", "claude-opus-5-5", 0.25, (2000, 5, 0, 0)),
        response(SESSIONS[1], day + "10:30:00Z", "Mystery-Model", None, (3000, 7, 0, 0)),
        report(SESSIONS[2], 0.75, day + "09:00:00Z"),  # no response read: cost, no tokens
    ]


def journal_lines() -> list[bytes]:
    payloads: list[tuple[bytes, int]] = []
    for variant in range(4):
        for raw in fixture_payloads():
            obj = json.loads(raw.decode().replace("/home/dev/shop", CWDS[variant % 3]))
            session = SESSIONS[variant]
            if session is None:
                obj.pop("session_id", None)
            else:
                obj["session_id"] = session
            data = json.dumps(obj).encode()
            payloads.append((data, len(data)))
    payloads += _extra_payloads()
    lines = []
    for seq, (data, size) in enumerate(payloads, 1):
        ts_ns = BASE_NS + (seq * STEP_NS) % (3 * DAY_MS * 1_000_000)
        frame = EventFrame(version=1, id=seq.to_bytes(16, "big"), ts_ns=ts_ns, payload=data,
                           original_size=size)
        lines.append(record.build(seq, frame, ts_ns + 1000))
    return lines


@dataclass(frozen=True)
class Ev:
    seq: int
    ts: int
    session_id: str | None
    event_type: str
    tool_name: str | None
    risk: str
    status: str
    file_path: str | None
    cwd: str | None
    tokens: tuple[str, ...]
    operation: str = "metadata"
    # its session's, worked out below from the journal lines (docs/transcripts.md)
    session_cost: float | None = None
    session_tokens: int | None = None
    models: frozenset[str] = frozenset()


def tokens(text: str) -> list[str]:
    """FTS5 unicode61 (remove_diacritics 0), independently: lowercase, and anything that is
    not a Unicode letter, number or private-use character separates."""
    out, current = [], []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in "LN" or category == "Co":
            current.append(ch.lower())
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return out


class Db:
    def __init__(self, folder: Path) -> None:
        index = Index(folder / "index.sqlite3")
        index.add(journal_lines())
        index.close()
        self.conn = connect_read_only(folder / "index.sqlite3")
        self.events = []
        rows = self.conn.execute(
            "SELECT seq, ts, session_id, event_type, tool_name, risk, status, file_path, cwd,"
            " operation FROM events ORDER BY seq").fetchall()
        lines = fetch_lines(self.conn, [row[0] for row in rows])
        figures = session_figures(lines)
        for (seq, ts, session, kind, tool, risk, status, file, cwd, op), line in zip(
                rows, lines, strict=True):
            made = row_of(line)
            assert made is not None
            self.events.append(Ev(seq, ts, session, kind, tool, risk, status, file, cwd,
                                  tuple(tokens(made.text)), op,
                                  *figures.get(session or "", (None, None, frozenset()))))

    def select(self, text: str, now_ms: int = NOW_MS) -> list[int]:
        sql, params = compile(text, now_ms)
        return self.run(sql, params)

    def run(self, sql: str, params: list[object]) -> list[int]:
        return [seq for (seq,) in self.conn.execute(
            f"SELECT seq FROM events WHERE {sql} ORDER BY seq", params)]


def session_figures(lines: list[bytes]) -> dict[str, tuple[Any, ...]]:
    """Per session: (cost, tokens, models) by the documented rules, from the lines: the
    last CostReport plus the prices of the responses written after it, else the prices of
    every response; tokens of every kind while there are responses; SessionStart's model
    and the responses'."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        ev = json.loads(line)
        payload = ev.get("payload")
        if not ev.get("session_id") or not isinstance(payload, dict):
            continue
        s = found.setdefault(ev["session_id"], {"responses": [], "report": None,
                                                "models": set()})
        if ev["event_type"] == "SessionStart" and isinstance(payload.get("model"), str):
            s["models"].add(payload["model"])
        elif ev["event_type"] == "ModelUsage":
            s["responses"].append(payload)
            s["models"].add(payload["model"])
        elif ev["event_type"] == "CostReport":
            s["report"] = payload
    out = {}
    for sid, s in found.items():
        priced = [(r["at"], r["cost_usd"]) for r in s["responses"] if r["cost_usd"] is not None]
        usd = None
        if s["report"] is not None:
            usd = s["report"]["total_cost_usd"] + sum(
                c for at, c in priced if at > s["report"]["as_of"])
        elif s["responses"]:
            usd = sum(c for _at, c in priced)
        count = sum(r["input_tokens"] + r["output_tokens"] + r["cache_read_input_tokens"]
                    + r["cache_creation_input_tokens"] for r in s["responses"])
        out[sid] = (None if usd is None else round(usd, 9), count if s["responses"] else None,
                    frozenset(s["models"]))
    return out


@pytest.fixture(scope="module")
def db() -> Iterator[Db]:
    folder = short_tempdir()
    made = Db(folder)
    yield made
    made.conn.close()
    shutil.rmtree(folder, ignore_errors=True)


# --- the documented semantics, by brute force ------------------------------------------

def glob_matches(pattern: str, value: str) -> bool:
    """SQLite GLOB as docs/query.md uses it: * any run, ? one character, the rest literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def text_holds(words: list[str], prefix: bool, ev: Ev) -> bool:
    doc, k = ev.tokens, len(words)
    for i in range(len(doc) - k + 1):
        if all(doc[i + j] == words[j] for j in range(k - 1)) and (
                doc[i + k - 1] == words[-1]
                or (prefix and doc[i + k - 1].startswith(words[-1]))):
            return True
    return False


def field_holds(name: str, value: str, ev: Ev) -> bool:
    name = name.lower()
    wild = "*" in value or "?" in value
    if name == "session":
        prefix = value.rstrip("*")
        if re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", prefix):
            return ev.session_id == prefix  # a whole id: that session only
        return ev.session_id is not None and ev.session_id.startswith(prefix)
    if name == "type":
        known = ev.event_type in EVENT_TYPES
        if wild:
            return glob_matches(value, ev.event_type) or (
                known and glob_matches(ascii_lower(value), ascii_lower(ev.event_type)))
        return ev.event_type == value or (
            known and ascii_lower(ev.event_type) == ascii_lower(value))
    if name in ("risk", "status"):
        return getattr(ev, name) == ascii_lower(value)
    if name == "op":
        return ev.operation == ascii_lower(value)
    if name == "model":
        wanted = ascii_lower(value)
        return any(glob_matches(wanted, ascii_lower(m)) if wild else wanted in ascii_lower(m)
                   for m in ev.models)
    if name == "scope":
        if ev.file_path is None or ev.cwd is None:
            return False
        inside = (not ev.file_path.startswith("/") or ev.file_path == ev.cwd
                  or ev.file_path.startswith(ev.cwd + "/"))
        return inside == (ascii_lower(value) == "inside")
    column = {"tool": ev.tool_name, "file": ev.file_path, "cwd": ev.cwd}[name]
    if column is None:
        return False
    if wild:
        return glob_matches(value, column)
    return column == value if name == "tool" else value in column


def time_bound(name: str, value: str, now_ms: int = NOW_MS) -> int:
    """docs/query.md's Times table, written again."""
    parts = re.findall(r"([0-9]+)([smhdw])", value)
    if parts and "".join(n + u for n, u in parts) == value:
        unit = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
        return now_ms - sum(int(n) * unit[u] for n, u in parts)
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    ms = (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return ms + DAY_MS if name == "until" and len(value) == 10 else ms


def time_holds(name: str, bound: int, ev: Ev) -> bool:
    return ev.ts >= bound if name == "since" else ev.ts < bound


def compare_holds(name: str, op: str, value: float, ev: Ev) -> bool:
    figure = ev.session_cost if name.lower() == "cost" else ev.session_tokens
    if figure is None:
        return False
    return {">": figure > value, ">=": figure >= value, "<": figure < value,
            "<=": figure <= value, "=": figure == value}[op]


def ast_holds(node: Query, ev: Ev) -> bool:
    """The semantics applied to a parsed query (for hand-written queries)."""
    if isinstance(node, Everything):
        return True
    if isinstance(node, Text):
        return text_holds(tokens(node.text), node.prefix, ev)
    if isinstance(node, Field):
        return field_holds(node.name, node.value, ev)
    if isinstance(node, Time):
        return time_holds(node.name, node.bound(NOW_MS), ev)
    if isinstance(node, Compare):
        return compare_holds(node.name, node.op, node.value, ev)
    if isinstance(node, Not):
        return not ast_holds(node.operand, ev)
    if isinstance(node, And):
        return all(ast_holds(child, ev) for child in node.operands)
    return any(ast_holds(child, ev) for child in node.operands)


def brute(db: Db, text: str) -> list[int]:
    node = parse(text)
    return [ev.seq for ev in db.events if ast_holds(node, ev)]


# --- unit tests: the grammar -----------------------------------------------------------

def t(text: str, prefix: bool = False) -> Text:
    """A Text node, position ignored (see shape())."""
    return Text(text, prefix)


def shape(node: Query) -> Query:
    """The node with positions zeroed, to compare trees."""
    if isinstance(node, Text):
        return Text(node.text, node.prefix)
    if isinstance(node, Field):
        return Field(node.name, node.value)
    if isinstance(node, Time):
        return Time(node.name, node.ms, node.ago)
    if isinstance(node, Compare):
        return Compare(node.name, node.op, node.value)
    if isinstance(node, Not):
        return Not(shape(node.operand))
    if isinstance(node, And):
        return And(tuple(shape(c) for c in node.operands))
    if isinstance(node, Or):
        return Or(tuple(shape(c) for c in node.operands))
    return node


@pytest.mark.parametrize(("text", "tree"), [
    ("", Everything()),
    ("  \t\n ", Everything()),
    ("login", t("login")),
    ("a b", And((t("a"), t("b")))),
    ("a AND b", And((t("a"), t("b")))),
    ("a OR b", Or((t("a"), t("b")))),
    ("a OR b c", Or((t("a"), And((t("b"), t("c")))))),
    ("a b OR c", Or((And((t("a"), t("b"))), t("c")))),
    ("a AND b OR c AND d", Or((And((t("a"), t("b"))), And((t("c"), t("d")))))),
    ("NOT a b", And((Not(t("a")), t("b")))),
    ("NOT (a b)", Not(And((t("a"), t("b"))))),
    ("NOT NOT a", Not(Not(t("a")))),
    ("a NOT b", And((t("a"), Not(t("b"))))),
    ("(a OR b) c", And((Or((t("a"), t("b"))), t("c")))),
    ("((a))", t("a")),
    ("(a b) c", And((t("a"), t("b"), t("c")))),  # nested ANDs flatten
    ("a OR (b OR c)", Or((t("a"), t("b"), t("c")))),
    ("a or b and c not d", And(tuple(map(t, ["a", "or", "b", "and", "c", "not", "d"])))),
    ("-a", Not(t("a"))),
    ("-(a OR b)", Not(Or((t("a"), t("b"))))),
    ('-"a b"', Not(t("a b"))),
    ("-tool:Bash", Not(Field("tool", "Bash"))),
    ("a-b", t("a-b")),
    ("--force", t("--force")),  # plain text: the token force
    ("a -b", And((t("a"), Not(t("b"))))),
    ("NOT(a)OR(b)", Or((Not(t("a")), t("b")))),
    ("login*", t("login", True)),
    ("login.t**", t("login.t", True)),
    ("fo*o", t("fo*o")),
    ('"npm test"', t("npm test")),
    ('"npm te"*', t("npm te", True)),
    ('"say ""hi"""', t('say "hi"')),
    ('"AND"', t("AND")),
    ('a"b c"d', And((t("a"), t("b c"), t("d")))),
    ("12:30", t("12:30")),
    ("tool:Bash", Field("tool", "Bash")),
    ("TOOL:Bash", Field("tool", "Bash")),
    ("Tool:mcp__github__*", Field("tool", "mcp__github__*")),
    ('file:"my dir/a.ts"', Field("file", "my dir/a.ts")),
    ('file:"my dir/"*', Field("file", "my dir/*")),
    ('file:"a ""q"" b"', Field("file", 'a "q" b')),
    ("file:a:b", Field("file", "a:b")),
    ("cwd:/home/dev/shop", Field("cwd", "/home/dev/shop")),
    ("session:9f1c*", Field("session", "9f1c*")),
    ("type:pretooluse", Field("type", "pretooluse")),
    ("risk:HIGH", Field("risk", "high")),
    ("status:Malformed", Field("status", "malformed")),
    ("tool:NOT", Field("tool", "NOT")),
    ("since:2h", Time("since", 7_200_000, ago=True)),
    ("until:1h30m", Time("until", 5_400_000, ago=True)),
    ("SINCE:0s", Time("since", 0, ago=True)),
    ("model:Opus", Field("model", "Opus")),
    ("cost>0.5", Compare("cost", ">", 0.5)),
    ("Cost>=$2", Compare("cost", ">=", 2.0)),
    ("cost<.25", Compare("cost", "<", 0.25)),
    ("tokens<=100k", Compare("tokens", "<=", 100_000)),
    ("TOKENS=2M", Compare("tokens", "=", 2_000_000)),
    ("-cost>1 tool:Bash", And((Not(Compare("cost", ">", 1.0)), Field("tool", "Bash")))),
    ("costs>1", t("costs>1")),  # not a measure: text, as before
    ("x=1", t("x=1")),
    ('"cost>1"', t("cost>1")),
])
def test_parse_trees(text: str, tree: Query) -> None:
    assert shape(parse(text)) == tree


def test_positions_point_at_terms() -> None:
    node = parse('ab  (-"c d" OR tool:x)')
    assert isinstance(node, And)
    first, group = node.operands
    assert isinstance(first, Text) and first.position == 0
    assert isinstance(group, Or)
    negated, field = group.operands
    assert isinstance(negated, Not) and isinstance(negated.operand, Text)
    assert negated.operand.position == 6
    assert isinstance(field, Field) and field.position == 15


@pytest.mark.parametrize(("value", "ms"), [
    ("2026-11-20", 1_795_132_800_000),
    ("2026-11-20T10:30", 1_795_132_800_000 + 37_800_000),
    ("2026-11-20t10:30z", 1_795_132_800_000 + 37_800_000),
    ("2026-11-20T10:30:15", 1_795_132_800_000 + 37_815_000),
    ("2026-11-20T10:30:15Z", 1_795_132_800_000 + 37_815_000),
    ("2026-11-20T11:30:15+01:00", 1_795_132_800_000 + 37_815_000),
    ("2026-11-20T09:00:15-01:30", 1_795_132_800_000 + 37_815_000),
    ("2026-11-20T10:30:15.25", 1_795_132_800_000 + 37_815_250),
    ("2026-11-20T10:30:15.000001", 1_795_132_800_000 + 37_815_001),  # ts is whole ms: up
    ("1970-01-01", 0),
    ("0001-01-01", -62_135_596_800_000),
])
def test_since_dates_and_times(value: str, ms: int) -> None:
    assert parse(f"since:{value}") == Time("since", ms)
    assert compile(f"since:{value}", NOW_MS) == ("ts >= ?", [ms])


def test_until_a_date_means_the_end_of_that_day() -> None:
    assert compile("until:2026-11-20", 0) == ("ts < ?", [1_795_132_800_000 + DAY_MS])
    assert compile("until:9999-12-31", 0) == ("ts < ?", [253_402_300_800_000])
    assert compile("until:2026-11-20T00:00", 0) == ("ts < ?", [1_795_132_800_000])


def test_durations_count_back_from_now() -> None:
    for value, ms in [("30s", 30_000), ("15m", 900_000), ("2h", 7_200_000),
                      ("7d", 7 * DAY_MS), ("2w", 14 * DAY_MS), ("1d12h", 36 * 3_600_000)]:
        assert compile(f"since:{value}", NOW_MS) == ("ts >= ?", [NOW_MS - ms])
        assert compile(f"until:{value}", NOW_MS) == ("ts < ?", [NOW_MS - ms])
    # the largest durations stay within SQLite's integers whatever now is
    for now in (0, -(2**63), 2**63 - 1, 2**70):
        _, (bound,) = compile("since:999999999w", now)
        assert isinstance(bound, int) and -(2**63) <= bound < 2**63


@pytest.mark.parametrize("value", [
    "yesterday", "2H", "2", "h", "-2h", "2h-", "1y", "9999999999d", "1h1h1h1h1h1h",
    "2026-11-31", "2026-13-01", "2026-1-01", "26-11-20", "2026-11-20T24:00",
    "2026-11-20T10:60", "2026-11-20T10:30:60", "2026-11-20T10:30+24:00", "2026-11-20T10",
    "2026-11-20T10:30:00.1234567890", "0000-01-01", "٢h",
])
def test_bad_times(value: str) -> None:
    for name in ("since", "until"):
        with pytest.raises(QueryError) as caught:
            parse(f"a {name}:{value}")
        assert str(caught.value) == (
            f"{name}: wants a duration like 2h or a date like 2026-11-20, not {value!r} "
            f"(column 3)")
        assert caught.value.position == 2 and caught.value.token == f"{name}:{value}"


# --- unit tests: errors ----------------------------------------------------------------

def doc_error_table() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "query.md").read_text()
    section = text[text.index("## Errors"):]
    section = section[:section.index("\n## ", 3)]
    return re.findall(r"^\| `(.+?)` \| `(.+)` \|$", section, re.MULTILINE)


def test_the_documented_errors_are_the_errors() -> None:
    table = doc_error_table()
    assert len(table) >= 12
    for query, message in table:
        with pytest.raises(QueryError) as caught:
            parse(query)
        assert str(caught.value) == message, query


@pytest.mark.parametrize(("text", "message", "position", "token"), [
    ("tol:Bash", "unknown field 'tol' at column 1: did you mean 'tool'?", 0, "tol:Bash"),
    ("a Sesion:1", "unknown field 'Sesion' at column 3: did you mean 'session'?", 2,
     "Sesion:1"),
    ("http://x.io", "unknown field 'http' at column 1 (fields: session, type, tool, risk, "
     "status, file, cwd, op, scope, model, cost, tokens, since, until; quote text that has a "
     "colon)", 0, "http://x.io"),
    ("cost>", "cost: needs a number after > (column 1)", 0, "cost>"),
    ("a cost>=x", "cost: wants US dollars like 0.5 or $2, not 'x' (column 3)", 2, "cost>=x"),
    ("tokens<5.5", "tokens: wants a whole number like 5000 or 100k, not '5.5' (column 1)", 0,
     "tokens<5.5"),
    ("cost:1", "cost: wants a comparison like cost>0.5, not 'cost:1' (column 1)", 0, "cost:1"),
    ("tool:", "tool: needs a value (column 1)", 0, "tool:"),
    ("a File:", "File: needs a value (column 3)", 2, "File:"),
    ('x file:""', "file: needs a value (column 3)", 2, 'file:""'),
    ("risk:hgh", "risk: wants low, medium or high, not 'hgh' (column 1)", 0, "risk:hgh"),
    ("x status:bad", "status: wants ok, unknown_type, schema_mismatch, not_object, malformed, "
     "truncated or empty, not 'bad' (column 3)", 2, "status:bad"),
    ('tool:Bash "npm', "unclosed quote at column 11", 10, '"npm'),
    ('file:"a b', "unclosed quote at column 6", 5, '"a b'),
    ('"a ""', "unclosed quote at column 1", 0, '"a ""'),
    ("(a OR b", "unclosed '(' at column 1", 0, "("),
    ("x (", "unclosed '(' at column 3", 2, "("),
    ("((a) b", "unclosed '(' at column 1", 0, "("),
    ("a OR b) c", "')' without '(' at column 7", 6, ")"),
    (")", "')' without '(' at column 1", 0, ")"),
    ("a ()", "empty '()' at column 3", 2, "()"),
    ("a ( ) b", "empty '()' at column 3", 2, "( )"),
    ("a OR", "'OR' at column 3 needs a term after it", 2, "OR"),
    ("a OR OR b", "'OR' at column 3 needs a term after it", 2, "OR"),
    ("(a AND) b", "'AND' at column 4 needs a term after it", 3, "AND"),
    ("OR a", "'OR' at column 1 needs a term before it", 0, "OR"),
    ("(AND a)", "'AND' at column 2 needs a term before it", 1, "AND"),
    ("a NOT", "'NOT' at column 3 needs a term after it", 2, "NOT"),
    ("NOT)", "'NOT' at column 1 needs a term after it", 0, "NOT"),
    ("-OR a", "'-' at column 1 needs a term after it", 0, "-"),
    ("npm -- test", "'--' at column 5 has no letters or digits to search for", 4, "--"),
    ("a - b", "'-' at column 3 has no letters or digits to search for", 2, "-"),
    ("a -", "'-' at column 3 has no letters or digits to search for", 2, "-"),
    ("a /", "'/' at column 3 has no letters or digits to search for", 2, "/"),
    ("*", "'*' at column 1 has no letters or digits to search for", 0, "*"),
    ('a ""', "'\"\"' at column 3 has no letters or digits to search for", 2, '""'),
    ('"..."*', "'\"...\"*' at column 1 has no letters or digits to search for", 0, '"..."*'),
    ("abc\udc80", "invalid character U+DC80 at column 4", 3, "\udc80"),
])
def test_errors_name_the_token_and_its_column(text: str, message: str, position: int,
                                              token: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text)
    error = caught.value
    assert str(error).startswith(message)
    assert "\n" not in str(error)
    assert (error.position, error.token, error.column) == (position, token, position + 1)
    assert text[position:position + len(token)] == token
    with pytest.raises(QueryError):
        compile(text, NOW_MS)


def test_nesting_and_size_limits() -> None:
    parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    parse("NOT " * MAX_DEPTH + "a")
    with pytest.raises(QueryError, match=r"^'\(' at column 25 nests too deep"):
        parse("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(QueryError, match=r"^'NOT' at column 97 nests too deep"):
        parse("NOT " * (MAX_DEPTH + 1) + "a")
    with pytest.raises(QueryError, match=r"^'-' at column 25 nests too deep"):
        parse("-(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    most = " OR ".join(["tool:x"] * MAX_TERMS)
    parse(most)
    with pytest.raises(QueryError, match=rf"^too many terms at column {len(most) + 5} "):
        parse(most + " OR tool:x")
    for text in ("(" * 10_000, "NOT " * 10_000, "-(" * 10_000, "-" * 10_000 + "(a)"):
        with pytest.raises(QueryError):  # not RecursionError
            parse(text)


def test_the_docs_list_the_searched_payload_fields() -> None:
    text = (ROOT / "docs" / "query.md").read_text()
    section = text[text.index("An event's text is"):text.index("## Fields")]
    assert set(re.findall(r"`(\w+)`", section)) >= set(TEXT_FIELDS)


def test_fields_are_described() -> None:
    assert list(FIELDS) == ["session", "type", "tool", "risk", "status", "file", "cwd",
                            "op", "scope", "model", "cost", "tokens", "since", "until"]
    assert all(text and "\n" not in text for text in FIELDS.values())


# --- unit tests: the SQL ---------------------------------------------------------------

FTS = "seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"


@pytest.mark.parametrize(("text", "sql", "params"), [
    ("", "1", []),
    ("login", FTS, ['"login"']),
    ("login.ts", FTS, ['"login.ts"']),
    ("login*", FTS, ['"login" *']),
    ('"npm te"*', FTS, ['"npm te" *']),
    ('"say ""hi"""', FTS, ['"say ""hi"""']),
    ("a\x00b", FTS, ['"a b"']),
    ("a b -c -d", FTS, ['(("a" AND "b") NOT "c" NOT "d")']),
    ("a -b", FTS, ['("a" NOT "b")']),
    ("-a -b", f"NOT {FTS}", ['("a" OR "b")']),
    ("a OR b c", FTS, ['("a" OR ("b" AND "c"))']),
    ("a tool:Bash", f"({FTS} AND (tool_name IS NOT NULL AND tool_name = ?))",
     ['"a"', "Bash"]),
    ("NOT NOT a", FTS, ['"a"']),
    ("-(a OR risk:low)", f"NOT (({FTS} OR risk = ?))", ['"a"', "low"]),
    ("tool:mcp__[x]_*", "(tool_name IS NOT NULL AND tool_name GLOB ?)", ["mcp__[[]x]_*"]),
    ("file:src/", "(file_path IS NOT NULL AND instr(file_path, ?) > 0)", ["src/"]),
    ("cwd:*/shop", "(cwd IS NOT NULL AND cwd GLOB ?)", ["*/shop"]),
    ("session:9f1c", "(session_id IS NOT NULL AND session_id >= ? AND session_id < ?)",
     ["9f1c", "9f1d"]),
    ("session:9f1c**", "(session_id IS NOT NULL AND session_id >= ? AND session_id < ?)",
     ["9f1c", "9f1d"]),
    ("session:*", "session_id IS NOT NULL", []),
    ("session:9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71",
     "(session_id IS NOT NULL AND session_id = ?)", ["9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71"]),
    ("session:9F1C2B7E-4D3A-4E59-9B1A-6C0F2D8E5A71",
     "(session_id IS NOT NULL AND session_id >= ? AND session_id < ?)",
     ["9F1C2B7E-4D3A-4E59-9B1A-6C0F2D8E5A71", "9F1C2B7E-4D3A-4E59-9B1A-6C0F2D8E5A72"]),
    ("session:a\ud7ff", "(session_id IS NOT NULL AND session_id >= ? AND session_id < ?)",
     ["a\ud7ff", "a\ue000"]),
    ("session:a\U0010ffff", "(session_id IS NOT NULL AND session_id >= ? AND session_id < ?)",
     ["a\U0010ffff", "b"]),
    ("session:\U0010ffff", "(session_id IS NOT NULL AND session_id >= ?)", ["\U0010ffff"]),
    ("type:PostToolUse", "event_type = ?", ["PostToolUse"]),
    ("type:posttooluse", "event_type IN (?, ?)", ["PostToolUse", "posttooluse"]),
    ("type:Whatever", "event_type = ?", ["Whatever"]),
    ("type:*compact", "(event_type IN (?, ?) OR event_type GLOB ?)",
     ["PostCompact", "PreCompact", "*compact"]),
    ("type:zz*", "event_type GLOB ?", ["zz*"]),
    ("risk:High", "risk = ?", ["high"]),
    ("status:OK", "status = ?", ["ok"]),
    ("model:Opus", "(session_id IS NOT NULL AND session_id IN (SELECT session_id FROM "
     "session_models WHERE instr(lower(model), ?) > 0))", ["opus"]),
    ("model:*Opus-[5]*", "(session_id IS NOT NULL AND session_id IN (SELECT session_id FROM "
     "session_models WHERE lower(model) GLOB ?))", ["*opus-[[]5]*"]),
    ("cost>=0.5", "(session_id IS NOT NULL AND session_id IN (SELECT session_id FROM "
     "sessions WHERE cost_usd >= ?))", [0.5]),
    ("tokens<1k", "(session_id IS NOT NULL AND session_id IN (SELECT session_id FROM "
     "sessions WHERE responses > 0 AND input_tokens + output_tokens + cache_read_tokens + "
     "cache_write_tokens < ?))", [1000]),
])
def test_sql(text: str, sql: str, params: list[object]) -> None:
    assert compile(text, NOW_MS) == (sql, params)


SQL_WORDS = {
    "seq", "IN", "SELECT", "rowid", "FROM", "events_fts", "WHERE", "MATCH", "NOT", "AND",
    "OR", "IS", "NULL", "GLOB", "instr", "ts", "session_id", "event_type", "tool_name",
    "risk", "status", "file_path", "cwd", "operation", "substr", "length",
    "sessions", "session_models", "model", "lower", "cost_usd", "responses", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens",
}


def check_sql(sql: str, params: list[object]) -> None:
    """Only mpmd's own SQL: known words, no literal but 0 and 1, a ? per parameter."""
    assert set(re.findall(r"[A-Za-z_]+", sql)) <= SQL_WORDS, sql
    assert re.fullmatch(r"[A-Za-z_ (),?<>=!|+01]*", sql), sql
    assert sql.count("?") == len(params)
    assert all(type(p) in (str, int, float) for p in params)


def test_values_never_reach_the_sql(db: Db) -> None:
    hostile = [
        "tool:\"'; DROP TABLE events; --\"", "file:\"x') OR 1=1 --\"", "a' OR '1'='1",
        '"a" OR "b" NEAR(c d) ^e', 'x "NOT" "AND" "(x" "*y"', "cwd:'", "session:'",
        "type:\"Pre'ToolUse\"", 'file:"?*["', "\"col : x\" {a b}:c ^a NEAR/3 a+b",
        "a OR 1=1", '"a"* "b"', "a*b*", "-x1:", 'a"x*"b', "tool:?", "type:?",
    ]
    for text in hostile:
        sql, params = compile(text, NOW_MS)
        check_sql(sql, params)
        db.run(sql, params)
    assert db.conn.execute("SELECT count(*) FROM events").fetchone()[0] == len(db.events)


# --- any input: a query or a QueryError, and SQL that runs ------------------------------

PIECES = [
    " ", "  ", "\t", "\n", '"', '""', "(", ")", "-", "--", "*", "?", ":", "[", "]", "'", ";",
    "AND", "OR", "NOT", "and", "or", "not", "NEAR", "^", "+", "{", "}",
    "tool:", "TYPE:", "session:", "since:", "until:", "file:", "risk:", "status:", "cwd:",
    "tol:", "x", "login", "ts", "Bash", "mcp__github__*", "2h", "1d", "2026-11-20", "T10:30",
    "Z", "+01:00", "high", "OK", "\x00", "é", "\u0301", "😀", "東京", "\U0010ffff", "\ud7ff",
    "DROP TABLE events", "/*", "9f1c",
    "cost", "Tokens", "model:", "model:opus", ">", ">=", "<", "<=", "=", "0.5", "$", "1e3",
    "100k", "-1",
]
junk = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)


def parse_or_error(text: str) -> tuple[str, list[object]] | None:
    try:
        query = parse(text)
    except QueryError as error:
        message = str(error)
        assert message and "\n" not in message
        assert f"column {error.position + 1}" in message
        assert 0 <= error.position < len(text)
        assert text[error.position:error.position + len(error.token)] == error.token
        return None
    return to_sql(query, NOW_MS)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), junk))
@example("\x00")
@example('"\x00"')
@example("a\x00b*")
@example("since:999999999w until:9999-12-31")
@example("session:\U0010ffff\U0010ffff")
def test_any_text_parses_or_fails_with_a_query_error(db: Db, text: str) -> None:
    made = parse_or_error(text)
    if made is not None:
        check_sql(*made)
        db.run(*made)  # no sqlite3.Error, FTS5 syntax errors included


def test_deep_and_long_queries_run(db: Db) -> None:
    deepest = [
        "NOT " * MAX_DEPTH + "a",
        "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH,
        "".join(f"(w{i} OR -" for i in range(MAX_DEPTH // 2)) + "a" + ")" * (MAX_DEPTH // 2),
        "".join(f"(tool:t{i} OR NOT " for i in range(MAX_DEPTH // 2)) + "x"
        + ")" * (MAX_DEPTH // 2),
        "".join(f"(w{i} OR v{i} -" for i in range(MAX_DEPTH // 2)) + "a" + ")" * (MAX_DEPTH // 2),
        " OR ".join(f"w{i}" for i in range(MAX_TERMS)),
        " ".join(f"-w{i}" for i in range(MAX_TERMS)),
        "a " + " ".join(f"-w{i}" for i in range(MAX_TERMS - 1)),
        " OR ".join(f"tool:t{i}*" for i in range(MAX_TERMS)),
        " ".join(f"-(file:f{i} OR w{i})" for i in range(MAX_TERMS // 2)),
    ]
    for text in deepest:
        sql, params = compile(text, NOW_MS)
        db.run(sql, params)


# --- brute force: the SQL's answers are the documented ones ----------------------------

HAND_PICKED = [
    "login", "LOGIN", "login.ts", "auth/login.ts", "src/auth", "login*", "log*", "logi",
    '"npm test"', '"npm te"*', '"test npm"', "npm test", "npm OR curl", "npm -test",
    "-npm", "NOT npm test", "caf*", "café", "cafe", "東京", "①②", "Überprüfe", "überprüfe",
    '"quoted"', "--force", "rm -rf", '"rm -rf"', "REDACTED", "cut here", "json login",
    "tool:Bash", "tool:bash", "-tool:Bash", "tool:mcp__*", "tool:*_*", "tool:?ead",
    "tool:mcp__lab__a[b]*c", "tool:mcp__lab__a[b]*", "tool:*]*", "NOT tool:*",
    "type:PreToolUse", "type:pretooluse", "type:PRETOOLUSE", "type:post*", "type:*Tool*",
    "type:malformed", "type:Unknown", "type:not_object", "type:EMPTY", "type:truncated",
    "type:*o*", "-type:Pre*",
    "session:9f1c2b7e", "session:9f1c2b7", "session:9f1c*", "session:a0e1b2c3-1111",
    "session:9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71", "session:9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a7",
    "-session:9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71*",
    "session:*", "-session:*", "session:zz", "-session:9f1c",
    "risk:high", "risk:medium", "-risk:low", "status:ok", "status:malformed",
    "status:unknown_type", "status:schema_mismatch", "status:truncated", "status:empty",
    "status:not_object",
    "file:src/auth/", "file:login", "file:*.ts", "file:*login*.ts", "file:/srv/[lab]*",
    'file:"/srv/[lab] tools/we*ird?.py"', "file:we*ird?.py", "-file:*.ts",
    "cwd:shop", "cwd:/home/dev/shop", "cwd:/home/dev/shop-api", "cwd:*-api",
    'cwd:"[lab] tools"', "cwd:/tmp*", "-cwd:shop",
    "since:1d", "since:36h", "until:2d", "since:2026-11-19", "until:2026-11-19",
    "since:2026-11-19 until:2026-11-19", "since:2026-11-19T12:00 until:2026-11-19T18:30Z",
    "since:2026-11-19T13:00+01:00", "until:1h30m", "since:30s", "since:2w",
    "(tool:Bash OR tool:Read) -risk:low", "tool:Bash OR type:Stop login",
    "NOT (tool:Bash OR file:*.ts) session:9f1c", "(npm OR login) since:2d -status:ok",
    "-(a OR b) tool:Bash", "auth -(test OR tool:Edit)", "NOT NOT tool:Bash",
    "a OR -login", "-login -npm OR tool:Write", "(login* OR session:a0) AND NOT risk:low",
    "cost>0", "cost>=1.5", "cost=1.5", "cost<1", "-cost<1", "cost<=0.75", "cost=0.75",
    "tokens>0", "tokens>=22000", "tokens<5k", "-tokens>0", "cost>0 -tokens>0",
    "model:opus", "model:OPUS", "model:mystery", "model:claude-*-5", "model:*", "-model:*",
    "model:sonnet", "model:haiku tool:Bash", "-model:opus OR cost>1",
]


def test_hand_picked_queries_match_the_brute_force(db: Db) -> None:
    sizes = []
    for text in HAND_PICKED:
        got = db.select(text)
        assert got == brute(db, text), text
        sizes.append(len(got))
    everything = len(db.events)
    # the comparison means something: most queries pick some events and not all
    assert sum(0 < n < everything for n in sizes) > 0.8 * len(sizes)
    assert db.select("tool:bash") == [] and db.select("cafe") == []
    assert len(db.select("")) == everything


def test_negation_includes_events_without_the_field(db: Db) -> None:
    without_tool = {ev.seq for ev in db.events if ev.tool_name is None}
    assert without_tool and without_tool <= set(db.select("-tool:Bash"))
    without_session = {ev.seq for ev in db.events if ev.session_id is None}
    assert without_session == set(db.select("-session:*"))


# A grammar over the vocabulary the events hold. A generated query is a tree of tuples,
# rendered to text and evaluated here, independently of mpmd.history.query's own AST.

@dataclass(frozen=True)
class Vocab:
    words: list[str]
    phrases: list[tuple[str, ...]]
    sessions: list[str]
    types: list[str]
    tools: list[str]
    files: list[str]
    cwds: list[str]
    models: list[str]


def vocab_of(db: Db) -> Vocab:
    words = sorted({w for ev in db.events for w in ev.tokens} | {"zebra", "qqq"})
    phrases = sorted({ev.tokens[i:i + n] for ev in db.events for n in (2, 3)
                      for i in range(0, len(ev.tokens) - n + 1, 3)})
    def present(attr: str) -> list[str]:
        return sorted({getattr(ev, attr) for ev in db.events} - {None})
    return Vocab(words, phrases, present("session_id"), present("event_type"),
                 present("tool_name"), present("file_path"), present("cwd"),
                 sorted({m for ev in db.events for m in ev.models}))


VOCAB: Vocab | None = None


def case_of(draw: st.DrawFn, text: str) -> str:
    how = draw(st.sampled_from(["same", "upper", "title"]))
    if not text.isascii() or how == "same":
        return text
    return text.upper() if how == "upper" else text.title()


def slice_of(draw: st.DrawFn, text: str) -> str:
    start = draw(st.integers(0, len(text) - 1))
    end = draw(st.integers(start + 1, len(text)))
    return text[start:end]


def wildcards(draw: st.DrawFn, text: str) -> str:
    """``text`` with some characters turned into ? and some runs into *."""
    chars = list(text)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(chars) - 1))
        j = draw(st.integers(i, min(len(chars), i + 8)))
        chars[i:j] = [draw(st.sampled_from(["*", "?"]))] if j > i + 1 else ["?"]
    return "".join(chars)


@st.composite
def text_leaf(draw: st.DrawFn) -> tuple[Any, ...]:
    assert VOCAB is not None
    if draw(st.booleans()):
        words = [draw(st.sampled_from(VOCAB.words))]
    else:
        words = list(draw(st.sampled_from(VOCAB.phrases)))
    prefix = draw(st.booleans()) and len(words[-1]) > 1
    if prefix:
        words[-1] = words[-1][:draw(st.integers(1, len(words[-1]) - 1))]
    shown = [case_of(draw, w) for w in words]
    quoted = draw(st.booleans())
    if quoted or any(w in ("AND", "OR", "NOT") for w in shown):
        rendered = '"' + " ".join(shown) + '"'
    else:
        rendered = draw(st.sampled_from([".", "/", "-", "_", ",", "'"])).join(shown)
    return ("text", rendered + ("*" if prefix else ""), words, prefix)


@st.composite
def field_leaf(draw: st.DrawFn) -> tuple[Any, ...]:
    assert VOCAB is not None
    name = draw(st.sampled_from(["session", "type", "tool", "risk", "status", "file", "cwd",
                                 "op", "scope", "model"]))
    if name == "session":
        value = draw(st.sampled_from(VOCAB.sessions + ["zz", "9f1c", "a0e"]))
        value = value[:draw(st.integers(1, len(value)))] + draw(st.sampled_from(["", "*"]))
    elif name == "type":
        value = draw(st.sampled_from(VOCAB.types + ["pretooluse", "nope"]))
        value = case_of(draw, value)
        if draw(st.booleans()):
            value = wildcards(draw, value)
    elif name in ("tool", "file", "cwd", "model"):
        pool = {"tool": VOCAB.tools, "file": VOCAB.files, "cwd": VOCAB.cwds,
                "model": VOCAB.models}[name]
        value = draw(st.sampled_from(pool))
        if name != "tool" or draw(st.booleans()):
            value = slice_of(draw, value)
        if draw(st.booleans()):
            value = wildcards(draw, value)
    elif name == "risk":
        value = case_of(draw, draw(st.sampled_from(["low", "medium", "high"])))
    elif name == "op":
        value = case_of(draw, draw(st.sampled_from(OPERATIONS)))
    elif name == "scope":
        value = case_of(draw, draw(st.sampled_from(SCOPES)))
    else:
        value = case_of(draw, draw(st.sampled_from(STATUSES)))
    if draw(st.booleans()) or re.search(r'[\s()"]', value) or value.startswith("-"):
        rendered = '"' + value.replace('"', '""') + '"'
    else:
        rendered = value
    return ("field", f"{case_of(draw, name)}:{rendered}", name, value)


@st.composite
def compare_leaf(draw: st.DrawFn) -> tuple[Any, ...]:
    name = draw(st.sampled_from(["cost", "tokens"]))
    op = draw(st.sampled_from(COMPARISONS))
    if name == "cost":
        value: float = draw(st.sampled_from([0, 0.25, 0.5, 0.75, 1, 1.5, 2]))
        shown = draw(st.sampled_from(["", "$"])) + str(value)
    else:
        value = draw(st.sampled_from([0, 5000, 5012, 22000, 22300]))
        shown = str(value)
    return ("compare", f"{case_of(draw, name)}{op}{shown}", name, op, value)


@st.composite
def time_leaf(draw: st.DrawFn) -> tuple[Any, ...]:
    name = draw(st.sampled_from(["since", "until"]))
    kind = draw(st.sampled_from(["duration", "date", "time"]))
    if kind == "duration":
        value = "".join(f"{draw(st.integers(0, 80))}{u}"
                        for u in draw(st.lists(st.sampled_from("smhdw"), min_size=1,
                                               max_size=2)))
    else:
        day = datetime(2026, 11, draw(st.integers(16, 22)), tzinfo=UTC)
        value = day.strftime("%Y-%m-%d")
        if kind == "time":
            moment = day + timedelta(minutes=draw(st.integers(0, 24 * 60 - 1)))
            value = moment.strftime("%Y-%m-%dT%H:%M") + draw(st.sampled_from(["", ":07", "Z"]))
    return ("time", f"{name}:{value}", name, value)


def render(node: tuple[Any, ...]) -> tuple[str, int]:
    """(text, precedence): OR 1, AND 2, NOT 3, terms and groups 4."""
    kind = node[0]
    if kind in ("text", "field", "time", "compare"):
        return node[1], 4
    if kind == "group":
        return "(" + render(node[1])[0] + ")", 4
    if kind == "not":
        text, prec = render(node[1])
        if prec < 3:
            text = f"({text})"
        if node[2] == "-" and text[0] not in "-N":
            return "-" + text, 3
        return "NOT " + text, 3
    if kind == "and":
        parts = []
        for child in node[1]:
            text, prec = render(child)
            parts.append(f"({text})" if prec < 2 else text)
        return node[2].join(parts), 2
    return " OR ".join(render(child)[0] for child in node[1]), 1


def holds(node: tuple[Any, ...], ev: Ev) -> bool:
    kind = node[0]
    if kind == "text":
        return text_holds(node[2], node[3], ev)
    if kind == "field":
        return field_holds(node[2], node[3], ev)
    if kind == "time":
        return time_holds(node[2], time_bound(node[2], node[3]), ev)
    if kind == "compare":
        return compare_holds(node[2], node[3], node[4], ev)
    if kind == "group":
        return holds(node[1], ev)
    if kind == "not":
        return not holds(node[1], ev)
    if kind == "and":
        return all(holds(child, ev) for child in node[1])
    return any(holds(child, ev) for child in node[1])


leaves = st.one_of(text_leaf(), text_leaf(), field_leaf(), field_leaf(), time_leaf(),
                   compare_leaf())
trees = st.recursive(leaves, lambda kids: st.one_of(
    st.tuples(st.just("not"), kids, st.sampled_from(["NOT", "-"])),
    st.tuples(st.just("group"), kids),
    st.tuples(st.just("and"), st.lists(kids, min_size=2, max_size=3),
              st.sampled_from([" ", " AND "])),
    st.tuples(st.just("or"), st.lists(kids, min_size=2, max_size=3)),
), max_leaves=7)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_queries_match_the_brute_force(db: Db, data: st.DataObject) -> None:
    global VOCAB
    if VOCAB is None:
        VOCAB = vocab_of(db)
    tree = data.draw(trees)
    text = render(tree)[0]
    try:
        sql, params = compile(text, NOW_MS)
    except QueryError as error:
        assert "nests too deep" in str(error), text
        return
    check_sql(sql, params)
    expected = [ev.seq for ev in db.events if holds(tree, ev)]
    assert db.run(sql, params) == expected, text


def test_scope_tells_files_outside_the_session_folder(tmp_path: Path) -> None:
    from mpmd.model import record
    from mpmd.model.events import EventFrame

    write = next(json.loads(p) for p in fixture_payloads()
                 if b'"PostToolUse"' in p and b'"Write"' in p)
    paths = {1: "/etc/hosts", 2: "/home/dev/shop/src/a.ts", 3: "src/b.ts",
             4: "/home/dev/shopping/c.ts", 5: "/home/dev/shop"}
    lines = []
    for seq, path in paths.items():
        payload = json.dumps({**write, "cwd": "/home/dev/shop",
                              "tool_input": {**write["tool_input"], "file_path": path}}).encode()
        frame = EventFrame(version=1, id=seq.to_bytes(16, "big"), ts_ns=seq, payload=payload,
                           original_size=len(payload))
        lines.append(record.build(seq, frame, seq))
    index = Index(tmp_path / "i.sqlite3")
    index.add(lines)
    index.close()
    conn = connect_read_only(tmp_path / "i.sqlite3")

    def seqs(text: str) -> list[int]:
        sql, params = compile(text, NOW_MS)
        return [s for (s,) in conn.execute(f"SELECT seq FROM events WHERE {sql} ORDER BY seq",
                                           params)]

    assert seqs("op:write scope:outside") == [1, 4]
    assert seqs("scope:INSIDE") == [2, 3, 5]
    assert seqs("-scope:outside") == [2, 3, 5]
    conn.close()
