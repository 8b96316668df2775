"""The search query language (docs/query.md), shared by the CLI, the API and the page.

Pure: no I/O, no clock (the caller passes ``now_ms``).

    parse(text) -> Query                       the AST; raises QueryError only
    to_sql(query, now_ms) -> (expr, params)    a boolean SQL expression over ``events``
    compile(text, now_ms) -> (expr, params)    both

``expr`` goes into ``SELECT ... FROM events WHERE {expr}``. Its text depends only on the
query's shape, never on a value: every value is a ``?`` parameter, and free text reaches
FTS5 as a MATCH string built here from double-quoted strings only, so neither SQLite nor
FTS5 can fail to parse it. Every leaf is true or false, never NULL, so NOT is exact.

Grammar (precedence NOT > AND > OR; adjacent terms are ANDed)::

    query   := [or]
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*
    unary   := ("NOT" | "-") unary | "(" or ")" | term
    term    := word | word"*" | '"phrase"' | '"phrase"*' | name ":" value
             | measure (">" | ">=" | "<" | "<=" | "=") number
    value   := word | '"quoted"'            (inside quotes, "" is one ")
    measure := "cost" | "tokens"            (in any case)

A word runs to whitespace, a parenthesis or a quote. "-" is NOT only right before a term
(not before a space, ")" or another "-"); AND, OR and NOT are keywords only in uppercase; a
word that starts with a measure and a comparison is a comparison; else a word whose part
before its first colon is letters a-z is a field.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import unicodedata
from collections.abc import Iterator
from datetime import date
from typing import TypeAlias

from mpmd.errors import QueryError
from mpmd.model import events

__all__ = [
    "COMPARISONS", "FIELDS", "MAX_DEPTH", "MAX_TERMS", "MEASURES", "And", "Compare",
    "Everything", "Field", "Not", "Or", "Query", "QueryError", "Text", "Time", "compile",
    "parse", "to_sql",
]

FIELDS: dict[str, str] = {
    "session": "a session id, or its first characters",
    "type": "the event type, a known one in any case (PreToolUse, pretooluse); * and ? glob",
    "tool": "the tool name, exactly (Bash), or a glob with * and ? (mcp__github__*)",
    "risk": "low, medium or high",
    "status": "ok, unknown_type, schema_mismatch, not_object, malformed, truncated or empty",
    "file": "part of the event's file path (case-sensitive), or a glob over all of it",
    "cwd": "part of the session's working folder (case-sensitive), or a glob over all of it",
    "op": "what the event does: read, write, execute, network or metadata",
    "scope": "outside: its file path is outside the session's folder; inside: within it",
    "model": "its session used a model whose id holds the value (any case), or a glob",
    "cost": "compared: cost>0.5 is a session that cost more than $0.50 (also >=, <, <=, =)",
    "tokens": "compared: tokens>=100k is a session of at least 100,000 tokens (all kinds)",
    "since": "at or after: a duration back from now (30s, 15m, 2h, 7d, 2w) or a UTC date/time",
    "until": "before: a duration back from now, or a UTC date (the end of that day) or time",
}
MAX_TERMS = 100  # terms in one query
MAX_DEPTH = 24  # nested parentheses and NOTs (SQLite's parser stack is small)

RISKS = ("low", "medium", "high")
OPERATIONS = ("read", "write", "execute", "network", "metadata")
SCOPES = ("inside", "outside")
STATUSES = (events.OK, events.UNKNOWN_TYPE, events.SCHEMA_MISMATCH, events.NOT_OBJECT,
            events.MALFORMED, events.TRUNCATED, events.EMPTY)
# Event types, as stored: the known ones, the status of a payload that is not an object, and
# "unknown" for an object without a hook_event_name.
EVENT_TYPES: tuple[str, ...] = (
    *sorted(events.KNOWN_EVENT_TYPES),
    events.EMPTY, events.MALFORMED, events.NOT_OBJECT, events.TRUNCATED, "unknown",
)
KEYWORDS = ("AND", "OR", "NOT")
MEASURES = ("cost", "tokens")  # compared, not name:value
COMPARISONS = (">=", "<=", ">", "<", "=")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TYPE_OF_LOWER = {name.translate(_ASCII_LOWER): name for name in EVENT_TYPES}
_FIELD_WORD = re.compile(r"([A-Za-z]+):(.*)", re.DOTALL)
_COMPARE_WORD = re.compile(r"([A-Za-z]+)(>=|<=|>|<|=)(.*)", re.DOTALL)
_DOLLARS = re.compile(r"\$?([0-9]{1,12}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})", re.ASCII)
_COUNT = re.compile(r"([0-9]{1,12})([kKmM]?)", re.ASCII)
_COUNT_UNIT = {"": 1, "k": 1000, "m": 1_000_000}
# A session's tokens, every kind (the sessions table of mpmd.history.index).
_SESSION_TOKENS = "input_tokens + output_tokens + cache_read_tokens + cache_write_tokens"
_DURATION = re.compile(r"(?:[0-9]{1,9}[smhdw]){1,5}", re.ASCII)
_DURATION_PART = re.compile(r"([0-9]+)([smhdw])", re.ASCII)
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?([Zz]|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# A whole Claude Code session id (a UUID) is the prefix of no other: matched with = , which
# reads the (session_id, seq) index in order.
_WHOLE_SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_INT64 = (-(2**63), 2**63 - 1)


# The AST: frozen dataclasses. ``position`` is where the term starts in the query text.

@dataclasses.dataclass(frozen=True)
class Everything:
    """The empty query: every event."""


@dataclasses.dataclass(frozen=True)
class Text:
    """Free text: the tokens of ``text`` in this order (one token: that token); with
    ``prefix``, the last one is a prefix."""

    text: str
    prefix: bool = False
    position: int = 0


@dataclasses.dataclass(frozen=True)
class Field:
    """``name:value`` for session, type, tool, risk, status, file and cwd. ``value`` is as
    written (risk and status values lowercased); ``glob`` when it holds * or ?."""

    name: str
    value: str
    position: int = 0

    @property
    def glob(self) -> bool:
        return "*" in self.value or "?" in self.value


@dataclasses.dataclass(frozen=True)
class Time:
    """``since:`` (ts >= bound) or ``until:`` (ts < bound). The bound is ``ms`` since the
    epoch, or ``now_ms - ms`` when ``ago``."""

    name: str
    ms: int
    ago: bool = False
    position: int = 0

    def bound(self, now_ms: int) -> int:
        value = now_ms - self.ms if self.ago else self.ms
        return max(_INT64[0], min(_INT64[1], value))


@dataclasses.dataclass(frozen=True)
class Compare:
    """``cost>0.5``, ``tokens<=100k``: the session's reconciled cost in US dollars, or its
    tokens of every kind, compared with ``value`` (``op`` one of COMPARISONS)."""

    name: str
    op: str
    value: float | int
    position: int = 0


@dataclasses.dataclass(frozen=True)
class Not:
    operand: Query


@dataclasses.dataclass(frozen=True)
class And:
    operands: tuple[Query, ...]


@dataclasses.dataclass(frozen=True)
class Or:
    operands: tuple[Query, ...]


Query: TypeAlias = Everything | Text | Field | Time | Compare | Not | And | Or


# --- lexing ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # ( ) - KEYWORD WORD PHRASE FIELD COMPARE
    raw: str  # as written
    position: int
    value: str = ""  # WORD/PHRASE: the text; FIELD, COMPARE: the value; KEYWORD: the keyword
    name: str = ""  # FIELD, COMPARE: the name as written
    prefix: bool = False  # WORD/PHRASE ending in *
    op: str = ""  # COMPARE: the comparison


_TERM_KINDS = frozenset({"(", "-", "WORD", "PHRASE", "FIELD", "COMPARE"})


def _quoted(text: str, start: int) -> tuple[str, int]:
    """(content, end) of the double-quoted string at ``start``; "" inside is one quote."""
    out = []
    i = start + 1
    n = len(text)
    while True:
        j = text.find('"', i)
        if j < 0:
            raise QueryError(f"unclosed quote at column {start + 1}", start, text[start:])
        out.append(text[i:j])
        if j + 1 < n and text[j + 1] == '"':
            out.append('"')
            i = j + 2
            continue
        return "".join(out), j + 1


def _stars(text: str, i: int) -> int:
    while i < len(text) and text[i] == "*":
        i += 1
    return i


def _is_delimiter(ch: str) -> bool:
    return ch.isspace() or ch in '()"'


def _lex(text: str) -> Iterator[_Token]:
    """The tokens, lazily: a long query fails at its first error, not after all of it."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            yield _Token(ch, ch, i)
            i += 1
        elif ch == '"':
            value, end = _quoted(text, i)
            stop = _stars(text, end)
            yield _Token("PHRASE", text[i:stop], i, value, prefix=stop > end)
            i = stop
        elif ch == "-" and i + 1 < n and not text[i + 1].isspace() and text[i + 1] not in "-)":
            yield _Token("-", ch, i)
            i += 1
        else:
            j = i
            while j < n and not _is_delimiter(text[j]):
                j += 1
            raw = text[i:j]
            field = _FIELD_WORD.fullmatch(raw)
            compare = _COMPARE_WORD.fullmatch(raw)
            if raw in KEYWORDS:
                yield _Token("KEYWORD", raw, i, raw)
            elif compare is not None and _lower(compare.group(1)) in MEASURES:
                yield _Token("COMPARE", raw, i, compare.group(3), name=compare.group(1),
                             op=compare.group(2))
            elif field is not None:
                name, value = field.group(1), field.group(2)
                if not value and j < n and text[j] == '"':
                    value, j = _quoted(text, j)
                    stop = _stars(text, j)
                    value += text[j:stop]
                    j = stop
                yield _Token("FIELD", text[i:j], i, value, name=name)
            else:
                stripped = raw.rstrip("*")
                yield _Token("WORD", raw, i, stripped, prefix=stripped != raw)
            i = j


# --- parsing --------------------------------------------------------------------------

def _is_token_char(ch: str) -> bool:
    """A character FTS5's unicode61 tokenizer keeps in a token (letters, numbers, private
    use); everything else separates tokens. FTS5 uses Unicode 6.1's tables, this the
    interpreter's newer ones: FTS5 also keeps in tokens the characters added since 6.1
    (newer emoji) and the common combining accents (docs/query.md). Used only to refuse a
    term with nothing to search for; FTS5 tokenizes the term itself."""
    category = unicodedata.category(ch)
    return category[0] in "LN" or category == "Co"


def _cut(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _show(text: str) -> str:
    """A token for a message: quoted, and cut if long (QueryError.token keeps it whole)."""
    return repr(_cut(text))


def _lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(_lower(name), FIELDS, n=1)
    fields = ", ".join(FIELDS)
    if close:
        return f": did you mean '{close[0]}'? (fields: {fields})"
    return f" (fields: {fields}; quote text that has a colon)"


def _time_ms(name: str, value: str, token: _Token) -> Time:
    def bad() -> QueryError:
        return QueryError(
            f"{name}: wants a duration like 2h or a date like 2026-11-20, not {_show(value)} "
            f"(column {token.position + 1})", token.position, token.raw)

    if _DURATION.fullmatch(value):
        ms = sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(value))
        return Time(name, ms, ago=True, position=token.position)
    found = _DATE_TIME.fullmatch(value)
    if found is None:
        raise bad()
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise bad() from None
    if hour is None:  # a date: its midnight (UTC), or for until: the next one
        return Time(name, days * _DAY_MS + (_DAY_MS if name == "until" else 0),
                    position=token.position)
    h, m, s = int(hour), int(minute), int(second or 0)
    if h > 23 or m > 59 or s > 59:
        raise bad()
    ns = ((days * 24 + h) * 60 + m) * 60_000_000_000 + s * 1_000_000_000
    if fraction:
        ns += int(fraction.ljust(9, "0"))
    if zone and zone not in "Zz":
        zh, zm = int(zone[1:3]), int(zone[4:6])
        if zh > 23 or zm > 59:
            raise bad()
        offset = (zh * 60 + zm) * 60_000_000_000
        ns += -offset if zone[0] == "+" else offset
    return Time(name, -(-ns // 1_000_000), position=token.position)  # ts is whole ms: ceil


_CHOICES = {"risk": RISKS, "status": STATUSES, "op": OPERATIONS, "scope": SCOPES}


def _compare(token: _Token) -> Compare:
    name, value, column = _lower(token.name), token.value, token.position + 1
    if not value:
        raise QueryError(f"{name}: needs a number after {token.op} (column {column})",
                         token.position, token.raw)
    if name == "cost":
        dollars = _DOLLARS.fullmatch(value)
        if dollars is None:
            raise QueryError(f"cost: wants US dollars like 0.5 or $2, not {_show(value)} "
                             f"(column {column})", token.position, token.raw)
        return Compare(name, token.op, float(dollars.group(1)), token.position)
    count = _COUNT.fullmatch(value)
    if count is None:
        raise QueryError(f"tokens: wants a whole number like 5000 or 100k, not {_show(value)} "
                         f"(column {column})", token.position, token.raw)
    number = int(count.group(1)) * _COUNT_UNIT[_lower(count.group(2))]
    return Compare(name, token.op, number, token.position)


def _field(token: _Token) -> Field | Time:
    name = _lower(token.name)
    if name not in FIELDS:
        raise QueryError(f"unknown field {_show(token.name)} at column {token.position + 1}"
                         + _suggest(token.name), token.position, token.raw)
    if name in MEASURES:
        example = "cost>0.5" if name == "cost" else "tokens>5000"
        raise QueryError(f"{name}: wants a comparison like {example}, not {_show(token.raw)} "
                         f"(column {token.position + 1})", token.position, token.raw)
    value = token.value
    if not value:
        raise QueryError(f"{_cut(token.name)}: needs a value (column {token.position + 1})",
                         token.position, token.raw)
    if name in ("since", "until"):
        return _time_ms(name, value, token)
    if name in _CHOICES:
        allowed = _CHOICES[name]
        if _lower(value) not in allowed:
            wants = f"{', '.join(allowed[:-1])} or {allowed[-1]}"
            raise QueryError(f"{name}: wants {wants}, not {_show(value)} "
                             f"(column {token.position + 1})", token.position, token.raw)
        value = _lower(value)
    return Field(name, value, token.position)


class _Parser:
    def __init__(self, text: str) -> None:
        bad = _SURROGATE.search(text)
        if bad is not None:  # not text: it cannot be encoded for SQLite
            i, ch = bad.start(), bad.group()
            raise QueryError(f"invalid character U+{ord(ch):04X} at column {i + 1}", i, ch)
        self.text = text
        self.tokens = _lex(text)
        self.next = next(self.tokens, None)
        self.terms = 0

    def peek(self) -> _Token | None:
        return self.next

    def advance(self) -> None:
        self.next = next(self.tokens, None)

    def starts_term(self) -> bool:
        token = self.peek()
        return token is not None and (
            token.kind in _TERM_KINDS or (token.kind == "KEYWORD" and token.value == "NOT"))

    def needs_term_after(self, op: _Token) -> None:
        if not self.starts_term():
            raise QueryError(f"{_show(op.raw)} at column {op.position + 1} needs a term after it",
                             op.position, op.raw)

    def parse(self) -> Query:
        if self.next is None:
            return Everything()
        node = self.parse_or(0)
        token = self.peek()
        if token is not None:  # parse_or stops only at ')' or the end
            raise QueryError(f"')' without '(' at column {token.position + 1}",
                             token.position, token.raw)
        return node

    def parse_or(self, depth: int) -> Query:
        items = [self.parse_and(depth)]
        while (token := self.peek()) is not None and token.kind == "KEYWORD" \
                and token.value == "OR":
            self.advance()
            self.needs_term_after(token)
            items.append(self.parse_and(depth))
        return _flat(Or, items)

    def parse_and(self, depth: int) -> Query:
        items = [self.parse_unary(depth)]
        while (token := self.peek()) is not None:
            if token.kind == "KEYWORD" and token.value == "AND":
                self.advance()
                self.needs_term_after(token)
            elif not self.starts_term():
                break
            items.append(self.parse_unary(depth))
        return _flat(And, items)

    def nest(self, token: _Token, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise QueryError(f"{_show(token.raw)} at column {token.position + 1} nests too deep "
                             f"(at most {MAX_DEPTH} parentheses and NOTs)",
                             token.position, token.raw)
        return depth + 1

    def parse_unary(self, depth: int) -> Query:
        token = self.peek()
        assert token is not None  # callers check starts_term() or that tokens remain
        column = token.position + 1
        if token.kind == "KEYWORD" and token.value in ("AND", "OR"):
            raise QueryError(f"{_show(token.raw)} at column {column} needs a term before it",
                             token.position, token.raw)
        if token.kind == ")":
            raise QueryError(f"')' without '(' at column {column}", token.position, token.raw)
        self.advance()
        if token.kind in ("-", "KEYWORD"):  # NOT
            inner = self.nest(token, depth)
            self.needs_term_after(token)
            return Not(self.parse_unary(inner))
        if token.kind == "(":
            inner = self.nest(token, depth)
            after = self.peek()
            if after is not None and after.kind == ")":
                raise QueryError(f"empty '()' at column {column}", token.position,
                                 self.text[token.position:after.position + 1])
            if after is None:
                raise QueryError(f"unclosed '(' at column {column}", token.position, "(")
            node = self.parse_or(inner)
            close = self.peek()
            if close is None:
                raise QueryError(f"unclosed '(' at column {column}", token.position, "(")
            self.advance()
            return node
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise QueryError(f"too many terms at column {column} (at most {MAX_TERMS})",
                             token.position, token.raw)
        if token.kind == "FIELD":
            return _field(token)
        if token.kind == "COMPARE":
            return _compare(token)
        if not any(_is_token_char(ch) for ch in token.value):
            raise QueryError(f"{_show(token.raw)} at column {column} has no letters or digits "
                             f"to search for", token.position, token.raw)
        return Text(token.value, token.prefix, token.position)


def _flat(kind: type[And] | type[Or], items: list[Query]) -> Query:
    if len(items) == 1:
        return items[0]
    flat: list[Query] = []
    for item in items:
        if isinstance(item, kind):
            flat.extend(item.operands)
        else:
            flat.append(item)
    return kind(tuple(flat))


def parse(text: str) -> Query:
    """The query's AST; QueryError (nothing else) when it is not a valid query."""
    return _Parser(text).parse()


# --- SQL ------------------------------------------------------------------------------

_FTS = "seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"


def _fts_phrase(node: Text) -> str:
    """One FTS5 string: quoted, inner quotes doubled, NUL (which would end the string for
    FTS5; it separates tokens anyway) as a space; a prefix is ``"..." *``."""
    body = node.text.replace('"', '""').replace("\x00", " ")
    return f'"{body}"' + (" *" if node.prefix else "")


def _fts(node: Query) -> str | None:
    """The FTS5 expression for a query made of free text only, and with something to
    match (FTS5's NOT is binary: "a NOT b"); None for anything else."""
    if isinstance(node, Text):
        return _fts_phrase(node)
    if isinstance(node, Or):
        parts = [_fts(child) for child in node.operands]
        if any(part is None for part in parts):
            return None
        return "(" + " OR ".join(p for p in parts if p is not None) + ")"
    if isinstance(node, And):
        positive, negative = _split_text(node.operands)
        if len(positive) + len(negative) < len(node.operands) or not positive:
            return None
        return _fts_and(positive, negative)
    return None


def _split_text(operands: tuple[Query, ...]) -> tuple[list[str], list[str]]:
    """FTS5 expressions of the operands that are free text, and of those that are NOT free
    text."""
    positive, negative = [], []
    for child in operands:
        if isinstance(child, Not):
            expr = _fts(child.operand)
            if expr is not None:
                negative.append(expr)
        else:
            expr = _fts(child)
            if expr is not None:
                positive.append(expr)
    return positive, negative


def _fts_and(positive: list[str], negative: list[str]) -> str:
    """``(p1 AND p2) NOT n1 NOT n2`` (FTS5's NOT binds tighter than AND, left to right)."""
    expr = " AND ".join(positive)
    if negative:
        if len(positive) > 1:
            expr = f"({expr})"
        expr += "".join(f" NOT {part}" for part in negative)
    return f"({expr})" if len(positive) + len(negative) > 1 else expr


def _glob(value: str) -> str:
    """``*`` and ``?`` stay wildcards; ``[`` is made literal."""
    return value.replace("[", "[[]")


def _after_prefix(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (code point
    order, which is SQLite's BINARY order over UTF-8); None if there is none."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # no surrogates in text
        nxt = 0xE000
    return stripped[:-1] + chr(nxt)


def _field_sql(node: Field, params: list[object]) -> str:
    name, value = node.name, node.value
    if name == "session":
        prefix = value.rstrip("*")
        if not prefix:
            return "session_id IS NOT NULL"
        if _WHOLE_SESSION_ID.fullmatch(prefix):  # one session: its events in seq order
            params.append(prefix)
            return "(session_id IS NOT NULL AND session_id = ?)"
        params.append(prefix)
        upper = _after_prefix(prefix)
        if upper is None:
            return "(session_id IS NOT NULL AND session_id >= ?)"
        params.append(upper)
        return "(session_id IS NOT NULL AND session_id >= ? AND session_id < ?)"
    if name == "type":
        if node.glob:
            pattern = _glob_regex(_lower(value))
            known = [t for t in EVENT_TYPES if pattern.fullmatch(_lower(t))]
            params.extend(known)
            params.append(_glob(value))
            if not known:
                return "event_type GLOB ?"
            return f"(event_type IN ({', '.join('?' * len(known))}) OR event_type GLOB ?)"
        canonical = _TYPE_OF_LOWER.get(_lower(value))
        if canonical is None or canonical == value:
            params.append(value)
            return "event_type = ?"
        params.extend((canonical, value))
        return "event_type IN (?, ?)"
    if name in ("risk", "status"):
        params.append(value)
        return f"{name} = ?"
    if name == "op":
        params.append(value)
        return "operation = ?"
    if name == "model":
        # A session's models (mpmd.history.index's session_models): few rows, read once.
        if node.glob:
            params.append(_glob(_lower(value)))
            used = "lower(model) GLOB ?"
        else:
            params.append(_lower(value))
            used = "instr(lower(model), ?) > 0"
        return ("(session_id IS NOT NULL AND session_id IN "
                f"(SELECT session_id FROM session_models WHERE {used}))")
    if name == "scope":
        # An absolute file path not under cwd is outside; relative paths are inside.
        params.extend(("/", "/"))
        under = ("(substr(file_path, 1, 1) != ? OR file_path = cwd "
                 "OR substr(file_path, 1, length(cwd) + 1) = cwd || ?)")
        if value == "inside":
            return f"(file_path IS NOT NULL AND cwd IS NOT NULL AND {under})"
        return f"(file_path IS NOT NULL AND cwd IS NOT NULL AND NOT {under})"
    column = {"tool": "tool_name", "file": "file_path", "cwd": "cwd"}[name]
    if node.glob:
        params.append(_glob(value))
        return f"({column} IS NOT NULL AND {column} GLOB ?)"
    params.append(value)
    if name == "tool":
        return "(tool_name IS NOT NULL AND tool_name = ?)"
    return f"({column} IS NOT NULL AND instr({column}, ?) > 0)"


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` with SQLite GLOB's meaning of * and ?, every other character literal."""
    return re.compile("".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern),
        re.DOTALL)


def _sql(node: Query, now_ms: int, params: list[object]) -> str:
    if isinstance(node, Everything):
        return "1"
    if isinstance(node, Text):
        params.append(_fts_phrase(node))
        return _FTS
    if isinstance(node, Field):
        return _field_sql(node, params)
    if isinstance(node, Time):
        params.append(node.bound(now_ms))
        return "ts >= ?" if node.name == "since" else "ts < ?"
    if isinstance(node, Compare):
        # A session with nothing read of its transcript passes no comparison: its cost is
        # NULL, and its tokens are not known to be 0.
        measure = "cost_usd" if node.name == "cost" else f"responses > 0 AND {_SESSION_TOKENS}"
        params.append(node.value)
        return ("(session_id IS NOT NULL AND session_id IN "
                f"(SELECT session_id FROM sessions WHERE {measure} {node.op} ?))")
    if isinstance(node, Not):
        if isinstance(node.operand, Not):  # NOT NOT x is x
            return _sql(node.operand.operand, now_ms, params)
        fts = _fts(node.operand)
        if fts is not None:
            params.append(fts)
            return f"NOT {_FTS}"
        return f"NOT ({_sql(node.operand, now_ms, params)})"
    if isinstance(node, Or):
        parts = [child for child in node.operands if _fts(child) is None]
        texts = [fts for child in node.operands if (fts := _fts(child)) is not None]
        sql = []
        if texts:  # all free-text alternatives in one MATCH
            params.append(texts[0] if len(texts) == 1 else "(" + " OR ".join(texts) + ")")
            sql.append(_FTS)
        sql.extend(_sql(child, now_ms, params) for child in parts)
        return sql[0] if len(sql) == 1 else "(" + " OR ".join(sql) + ")"
    # And: the free-text operands (and NOTs of free text) in one MATCH, the rest beside it
    positive, negative = _split_text(node.operands)
    rest = [child for child in node.operands
            if _fts(child.operand if isinstance(child, Not) else child) is None]
    sql = []
    if positive:
        params.append(_fts_and(positive, negative))
        sql.append(_FTS)
    elif negative:
        params.append(negative[0] if len(negative) == 1 else "(" + " OR ".join(negative) + ")")
        sql.append(f"NOT {_FTS}")
    sql.extend(_sql(child, now_ms, params) for child in rest)
    return sql[0] if len(sql) == 1 else "(" + " AND ".join(sql) + ")"


def to_sql(query: Query, now_ms: int) -> tuple[str, list[object]]:
    """(expr, params): ``expr`` is a boolean SQL expression over the ``events`` table of
    mpmd.history.index, with ``?`` for each of ``params``. ``now_ms`` (ms since the epoch) anchors
    durations (``since:2h``)."""
    params: list[object] = []
    return _sql(query, now_ms, params), params


def compile(text: str, now_ms: int) -> tuple[str, list[object]]:
    """parse + to_sql."""
    return to_sql(parse(text), now_ms)


def time_bound(name: str, value: str, now_ms: int) -> int:
    """What ``since:VALUE`` or ``until:VALUE`` stands for, in ms since the epoch (for
    `mpmd stats --since` and the stats API); QueryError if VALUE is not a time."""
    node = parse(f"{name}:{value}") if value.strip() == value and value else None
    if not isinstance(node, Time):
        raise QueryError(f"{name}: wants a duration like 2h or a date like 2026-11-20, "
                         f"not {value!r}", 0, value)
    return node.bound(now_ms)
