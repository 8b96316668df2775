"""Redaction of every text mpmd stores or sends (issue 12, "Hardening", items 2-4): the raw
of cut and malformed payloads, the bytes kept aside in rejected/, and every field derived from
a payload. What is checked: no secret, or piece of one, in the journal, `tail --json`, the
index, the viewer's API, an export or rejected/; and, for any payload, no stored text that the
redactor would still change."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import string
import tempfile
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mpm_hook import wire
from mpmd.ingest.hook_socket import Rejects
from mpmd.model import enrich, events, record
from mpmd.model.events import EventFrame
from mpmd.model.redact import needs_redaction, redact_obj, redact_raw, redact_text
from mpmd.model.sessions import EventView, Sessions
from tests.test_history import api
from tests.test_redact import json_values, secret_text
from tests.utils import (
    Daemon,
    examples,
    journal_events,
    journal_lines,
    mpmd_cli,
    run_hook,
    spool_files,
    status,
    wait_until,
)

# Sample secrets, built from pieces so that this file does not trip secret scanners:
# kind -> (the format's fixed prefix, the secret part after it).
TOKENS = {
    "aws_key_id": ("AKIA", "Q7W3E9R1" + "T5Y2U8I4"),
    "github": ("ghp_", "Zq8Lm3Np7Rt2Vx6B" + "c9Df4Gh1Jk5Ws0Ey"),
    "slack": ("xoxb-", "2468135790-13579" + "24680-Qw7Er8Ty9Ui0"),
    "jwt": ("eyJ", "hbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbjQ3In0" + ".Xq3Vb8Nm2Lk7Jh4Gf9Ds1Pa6"),
    "google": ("AIza", "SyQ1w2E3r4T5y6U7i8O9" + "p0A1s2D3f4G5h6J"),
    "anthropic": ("sk-ant-", "api03-Vb7Nm3Qw9Er1" + "Ty5Ui2Op8As4Df6"),
    "openai": ("sk-", "proj-Hj4Kl8Zx2Cv6" + "Bn0Mq3We7Rt1"),
    "stripe": ("sk_live_", "51Hq8Rw3Ty7Ui2" + "Op5As9Df"),
    "gitlab": ("glpat-", "Pq9Wr2Et6Yu1" + "Io5Ap8Sd3"),
}
assert len(TOKENS["google"][1]) == 35
PASSWORD = "Hu7nT3r2" + "Xq9Z"
URL_PASSWORD = "Pg5ecr3t" + "W0rd9"
BEARER = "Br4rT0k3n" + "V4lu3"
# Texts that hold a secret by its name: (text, the secret in it).
NAMED = [
    (f"DB_PASSWORD={PASSWORD} ./migrate", PASSWORD),
    (f"psql postgres://app:{URL_PASSWORD}@db:5432/shop", URL_PASSWORD),
    (f'curl -H "Authorization: Bearer {BEARER}" https://api.example.com', BEARER),
]
SECRET_PARTS = [part for _, part in TOKENS.values()] + [PASSWORD, URL_PASSWORD, BEARER]

WINDOW = 5  # this many characters of a secret in a row count as a leak
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|([\s\S]))")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unescaped(text: str) -> str:
    """``text`` with JSON escapes read, leniently (whatever the text is)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1)
                       else _SIMPLE.get(m.group(2), m.group(2)), text)


def leaks(text: str | bytes, secrets: list[str] = SECRET_PARTS) -> list[str]:
    """Pieces of ``secrets`` found in ``text``, as it stands or with its escapes read."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    readings = (text, _unescaped(text))
    return [secret[i:i + WINDOW] for secret in secrets for i in range(len(secret) - WINDOW + 1)
            if any(secret[i:i + WINDOW] in r for r in readings)]


def build(payload: bytes, original_size: int | None = None) -> dict:
    frame = EventFrame(version=1, id=bytes(16), ts_ns=1_700_000_000_000_000_000,
                       payload=payload, original_size=original_size or len(payload))
    return msgspec.json.decode(record.build(7, frame, 1_700_000_000_000_000_001))


def raw_text(stored: dict) -> str:
    if stored.get("raw_encoding") == "base64":
        return base64.b64decode(stored["raw"]).decode("utf-8", "surrogateescape")
    return stored.get("raw") or ""


def escaping_encoder(chars: str):
    """A JSON encoder that writes each of ``chars`` as \\u00XX, "/" (when among them) as "\\/":
    valid JSON that standard encoders do not write (PHP writes "\\/")."""
    def text(s: str) -> str:
        out = []
        for ch in s:
            if ch == "/" and "/" in chars:
                out.append("\\/")
            elif ch in chars:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(json.dumps(ch, ensure_ascii=False)[1:-1])
        return '"' + "".join(out) + '"'

    def encode(value: object) -> str:
        if isinstance(value, str):
            return text(value)
        if isinstance(value, dict):
            return "{" + ",".join(f"{text(k)}:{encode(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ",".join(encode(v) for v in value) + "]"
        return json.dumps(value)

    return lambda value: encode(value).encode("utf-8", "surrogatepass")


ENCODERS = {
    "json": lambda v: json.dumps(v).encode(),
    "json-utf8": lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    "msgspec": msgspec.json.encode,
}


def _token(kind: str) -> str:
    prefix, part = TOKENS[kind]
    return prefix + part


# --- 2. secrets in the raw of cut and malformed payloads --------------------------------------

ESCAPES_BEFORE = ["\n", "\t", "\r", '"', "\\", "\x1b", "é", "\u2028", "x\n", " \\n"]


@pytest.mark.parametrize("kind", sorted(TOKENS))
@pytest.mark.parametrize("before", ESCAPES_BEFORE)
def test_a_token_right_after_an_escape_is_redacted_in_raw(kind: str, before: str) -> None:
    payload = json.dumps({"hook_event_name": "PostToolUse", "session_id": "s",
                          "tool_response": {"content": f"x{before}{_token(kind)}\n" + "z" * 50}})
    for data, size in ((payload.encode()[:-20], len(payload)),  # cut by the hook: truncated
                       (payload.encode()[:-20], None),  # cut by the stdin timeout: malformed
                       (payload.encode() + b"}", None)):  # malformed
        stored = build(data, size)
        assert stored["status"] in (events.TRUNCATED, events.MALFORMED)
        assert not leaks(raw_text(stored)), raw_text(stored)
        assert f"[REDACTED:{kind}]" in raw_text(stored)


@pytest.mark.parametrize("chars", ["A", "K", "0123456789", "_-.", string.ascii_letters])
def test_a_token_written_with_escapes_is_redacted_in_raw(chars: str) -> None:
    value = {"hook_event_name": "PostToolUse", "session_id": "s",
             "tool_response": [_token(kind) for kind in sorted(TOKENS)]}
    data = escaping_encoder(chars)(value)
    for payload, size in ((data[:-2], len(data)), (data + b"x", None)):
        stored = build(payload, size)
        assert not leaks(raw_text(stored)), raw_text(stored)


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_a_token_the_cut_goes_through_is_redacted(kind: str) -> None:
    token = _token(kind)
    payload = json.dumps({"hook_event_name": "PostToolUse", "session_id": "s",
                          "tool_response": {"stdout": "x\n" + token + "\nmore"}}).encode()
    at = payload.index(token.encode())
    prefix = len(TOKENS[kind][0])
    for cut in range(at + prefix + 1, at + len(token) + 1):
        raw = raw_text(build(payload[:cut], len(payload)))
        # (a cut Anthropic key may read as an OpenAI one: either way a marker)
        assert re.search(r"\\n\[REDACTED:[a-z_]+\]\Z", raw), raw[-60:]


@pytest.mark.parametrize(("text", "secret"), NAMED)
def test_a_named_secret_the_cut_goes_through_is_redacted(text: str, secret: str) -> None:
    payload = json.dumps({"hook_event_name": "PreToolUse", "session_id": "s",
                          "tool_input": {"command": text, "password": PASSWORD}}).encode()
    for anchor in (secret, PASSWORD):
        at = payload.rindex(anchor.encode())
        for cut in range(at + 1, at + len(anchor) + 1):
            raw = raw_text(build(payload[:cut], len(payload)))
            part = anchor[: cut - at]
            assert not raw.endswith(part) and (len(part) < 3 or part not in raw), raw[-80:]


def test_secrets_next_to_escapes_in_keys_values_and_quotes() -> None:
    payload = (
        '{"hook_event_name": "PostToolUse", "tool_input": {'
        '"pass\\u0077ord": "' + PASSWORD + '", '  # an escaped key
        '"password": "a\\"' + PASSWORD + '", '  # a quote inside the value
        '"token":\n"' + PASSWORD + '", '  # a newline between key and value
        '"url": "postgres:\\/\\/app:' + URL_PASSWORD + '@db", '  # "\/" for "/"
        '"cmd": "PASSWORD\\t=\\t\\u0027' + PASSWORD + '\\u0027"'  # \t and \u0027 around
        '}, "cut": "'
    )
    for data, size in ((payload.encode(), len(payload) + 100), (payload.encode(), None)):
        stored = build(data, size)
        assert not leaks(raw_text(stored)), raw_text(stored)


def test_the_issue_s_cut_payload_reaches_nothing_in_clear(home: Path) -> None:
    """The reproduction from the issue, through a real hook and daemon: a payload over the
    frame limit, a key right after an escaped newline; and tokens on both sides of where the
    hook cuts (wire.MAX_PAYLOAD_BYTES), so that the cut falls among them, most often in one."""
    github = _token("github")
    # 40 bytes each once encoded ("\\" + token + " "): 32 KB from 16 KB before the cut, which
    # (today) falls 20 characters into a token.
    around_cut = "".join(f"\\{github} " for _ in range(800))
    content = (f"x\n{_token('aws_key_id')}\n" + f"y\t{_token('slack')}\t"
               + "z" * (wire.MAX_PAYLOAD_BYTES - 16384 + 20) + around_cut + "z" * (1 << 20))
    payload = json.dumps({"hook_event_name": "PostToolUse", "session_id": "s-cut",
                          "tool_response": {"content": content}}).encode()
    with Daemon(home) as daemon:
        assert run_hook(home, payload).returncode == 0
        # Redacting 8 MiB takes the daemon a few tenths of a second; the index, longer.
        wait_until(lambda: status(home).get("index_last_seq") == 1, "the event is indexed",
                   timeout=300)
        tail = mpmd_cli(home, "tail", "--json")
        assert tail.returncode == 0, tail.stderr
        code, found = api(home, "/api/events?q=&limit=5")
        assert code == 200
        assert daemon.stop() == 0
    [event] = journal_events(home)
    assert event["status"] == "truncated" and event["original_size"] == len(payload)
    raw = raw_text(event)
    # Cut among the tokens: after the last one redacted, at most a piece of the next prefix.
    assert raw.endswith("[REDACTED:github]") or ' \\\\ghp_'.startswith(
        raw[raw.rindex("[REDACTED:github]") + len("[REDACTED:github]"):]), raw[-100:]
    assert "[REDACTED:aws_key_id]" in raw and "[REDACTED:slack]" in raw
    assert not leaks(b"".join(journal_lines(home)))
    assert not leaks(tail.stdout)
    assert not leaks(json.dumps(found))
    assert not leaks(_index_text(home), [s.lower() for s in SECRET_PARTS])


def _index_text(home: Path) -> str:
    """The search index's files (SQLite, FTS terms lower-cased), as lower-case text."""
    files = sorted(home.glob("index.sqlite3*"))
    assert files, "no index"
    return b"".join(p.read_bytes() for p in files).decode("utf-8", "replace").lower()


# --- 3. rejected/ --------------------------------------------------------------------------------

SECRET_EVENT = json.dumps({
    "hook_event_name": "PreToolUse", "session_id": "s", "tool_name": "Bash",
    "tool_input": {"command": f"psql postgres://app:{URL_PASSWORD}@db/shop",
                   "password": PASSWORD},
}).encode()


def _frame(payload: bytes = SECRET_EVENT, event_id: bytes | None = None) -> bytes:
    return wire.encode_event(event_id or os.urandom(16), time.time_ns(), payload, len(payload))


def test_a_frame_cut_mid_send_is_kept_aside_redacted(home: Path) -> None:
    frame = _frame()
    cut = frame[:-9 - 7]  # the hook killed while sending: the last 7 payload bytes never came
    assert cut.endswith(PASSWORD[:-4].encode())  # ... so the password ends the kept bytes
    with Daemon(home) as daemon:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(home / "mpmd.sock"))
            s.sendall(cut)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(30)  # a bound on the test, not what it measures
            assert s.recv(100) == b""  # closed without an ack
        wait_until(lambda: status(home)["counters"].get("rejected_truncated") == 1,
                   "the cut frame is rejected")
        assert daemon.stop() == 0
    [kept] = (home / "rejected").iterdir()
    data = kept.read_bytes()
    assert not leaks(data), data
    assert PASSWORD[:3].encode() not in data
    # Still what it was for diagnosis: the frame's header as sent, the payload's shape.
    assert data.startswith(cut[:4 + 4 + 16 + 9 + 5])
    assert b"postgres://app:[REDACTED]@db/shop" in data and b'"password": "[REDACTED]' in data


def test_a_spool_file_kept_aside_is_redacted(home: Path) -> None:
    event_id = os.urandom(16)
    frame = _frame(event_id=event_id)
    (home / "spool").mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{event_id.hex()}.frame"
    (home / "spool" / name).write_bytes(frame[:-9 - 7])  # spooled, then cut (disk full...)
    with Daemon(home) as daemon:
        wait_until(lambda: not spool_files(home), "the spool is drained")
        assert daemon.stop() == 0
    data = (home / "rejected" / name).read_bytes()
    assert not leaks(data) and PASSWORD[:3].encode() not in data, data
    assert data.startswith(frame[:4 + 4 + 16 + 9 + 5])


def test_rejects_redact_each_payload_whatever_bytes_the_framing_holds() -> None:
    # Ids and timestamps full of quotes and backslashes, several frames, garbage after them.
    frames = [_frame(event_id=b'"' * 8 + b"\\" * 8), _frame(event_id=b'\\"' * 8),
              _frame(b'{"x": "' + _token("github").encode() + b'"}', b"\x00" * 16)]
    for tail in (b"", b'"\xff\x00' + SECRET_EVENT, _frame()[:200]):
        stream = b"".join(frames) + tail
        for cut in (len(stream), len(stream) - 3, 120, 60):
            with tempfile.TemporaryDirectory() as folder:
                Rejects(Path(folder), Counter()).keep("invalid", stream[:cut], name="x.bin")
                data = (Path(folder) / "x.bin").read_bytes()
            assert not leaks(data), (cut, data)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120), st.binary(max_size=40))
def test_rejects_keep_bytes_with_nothing_secret_as_they_are(head: bytes, tail: bytes) -> None:
    """What has nothing to redact comes back byte for byte, framing, garbage, not UTF-8."""
    for data in (head + tail, _frame(b'{"a": "\xff\\n\\u00e9"}')[:len(head) + 20] + tail):
        assume(not re.search(rb"(?i:A[KS]IA|gh[pousr]_|eyJ|sk[-_]|AIza|xox|xapp|glpat|://|"
                             rb"pass|secret|token|key|auth|cookie|cred)", data))
        assert Rejects.redacted(data) == data


# --- 4. the fields derived from a payload --------------------------------------------------------

CWD = "/home/dev/" + _token("github") + "/shop"


@pytest.mark.parametrize("field", ["cwd", "session_id", "agent_id", "tool_use_id", "tool_name"])
def test_each_top_level_field_is_redacted(field: str) -> None:
    value = {"cwd": CWD}.get(field, "x-" + _token("aws_key_id"))
    obj = {"hook_event_name": "PreToolUse", "session_id": "s", "cwd": "/home/dev/shop",
           "tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_use_id": "toolu_1"}
    obj[field] = value
    for encode in ENCODERS.values():
        stored = build(encode(obj))
        assert stored["payload"][field] == stored[field] != value
        assert not leaks(json.dumps(stored))


def test_hook_event_name_of_an_unknown_type_is_redacted() -> None:
    for name in ("Brand " + _token("aws_key_id"), f"x\\n{_token('slack')}"):
        stored = build(json.dumps({"hook_event_name": name, "session_id": "s"}).encode())
        assert stored["status"] == events.UNKNOWN_TYPE
        assert not leaks(json.dumps(stored)), stored
        assert stored["event_type"] == stored["payload"]["hook_event_name"]


def test_a_summary_joined_from_redacted_parts_is_redacted_whole() -> None:
    # The command's parts are clean one by one; folded to one line they assign a password.
    payload = json.dumps({"hook_event_name": "PreToolUse", "session_id": "s",
                          "tool_name": "Bash",
                          "tool_input": {"command": f"password:\n{PASSWORD}"}}).encode()
    stored = build(payload)
    assert PASSWORD not in stored["summary"], stored["summary"]
    assert len(stored["summary"]) <= enrich.SUMMARY_MAX


def test_the_error_text_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """msgspec's messages quote types and paths today, not values: a future message (or
    another check's) that quotes the payload must not carry a secret into `error`."""
    real = events.parse_payload
    token = _token("aws_key_id")

    def quoting(raw: bytes):
        event, state, _error = real(raw)
        return event, events.MALFORMED, f"unexpected {token} at byte 3"

    monkeypatch.setattr(events, "parse_payload", quoting)
    stored = build(b'{"x": 1')
    assert token not in stored["error"] and "[REDACTED:aws_key_id]" in stored["error"]


def test_a_token_in_cwd_shows_nowhere(home: Path) -> None:
    """The issue's case end to end: journal, tail --json, the index and the viewer's API,
    the sessions table, and every export format."""
    payloads = [
        {"hook_event_name": "SessionStart", "session_id": "s-cwd", "cwd": CWD,
         "source": "startup", "model": "claude"},
        {"hook_event_name": "PreToolUse", "session_id": "s-cwd", "cwd": CWD,
         "tool_name": "Read", "tool_input": {"file_path": CWD + "/src/a.ts"},
         "tool_use_id": "toolu_1"},
        {"hook_event_name": "PostToolUseFailure", "session_id": "s-cwd", "cwd": CWD,
         "tool_name": "Bash", "tool_input": {"command": "cat /etc/x"}, "error": "no",
         "tool_use_id": "toolu_2"},
    ]
    with Daemon(home) as daemon:
        for payload in payloads:
            assert run_hook(home, json.dumps(payload).encode()).returncode == 0
        wait_until(lambda: status(home)["index_last_seq"] == len(payloads), "all indexed")
        seen = [mpmd_cli(home, "tail", "--json").stdout, mpmd_cli(home, "tail").stdout]
        for fmt in ("md", "html", "json", "jsonl"):
            result = mpmd_cli(home, "export", "s-cwd", "--format", fmt)
            assert result.returncode == 0, result.stderr
            seen.append(result.stdout)
        for route in ("/api/events?q=&limit=25", "/api/sessions",
                      "/api/history/sessions?since=1d", "/api/history/session?id=s-cwd"):
            code, body = api(home, route)
            seen.append(json.dumps(body))
        assert daemon.stop() == 0
    events_ = journal_events(home)
    assert [e["cwd"] for e in events_] == ["/home/dev/[REDACTED:github]/shop"] * 3
    for text in [*seen, b"".join(journal_lines(home)).decode()]:
        assert not leaks(text), text[:300]
    assert not leaks(_index_text(home), [s.lower() for s in SECRET_PARTS])


# --- properties: every stored text, any payload --------------------------------------------------

_FIELDS = ["session_id", "cwd", "agent_id", "tool_name", "tool_use_id", "prompt", "message",
           "error", "reason", "file_path", "new_cwd", "directory", "source", "model",
           "agent_type", "notification_type", "task_subject", "mcp_server_name", "name",
           "trigger", "command_name", "permission_mode"]
_TOOL_KEYS = ["command", "file_path", "path", "url", "pattern", "query", "description",
              "prompt", "content", "old_string", "notebook_path", "subagent_type"]
_TYPES = sorted(events.KNOWN_EVENT_TYPES) + ["Brand New"]


# Long strings, with escapes or without: raw redaction reads those apart (_SKIP_LONGER_THAN).
LONG = st.sampled_from(["", "", "y\n" * 700, "y" * 1500 + " ", "y\t" * 300 + "\u00e9" * 200])
long_text = st.builds(lambda a, b, c: a + b + c, secret_text, LONG, secret_text)


@st.composite
def hook_payloads(draw) -> dict:
    obj: dict[str, object] = {"hook_event_name": draw(st.sampled_from(_TYPES) | secret_text)}
    for key in draw(st.lists(st.sampled_from(_FIELDS), max_size=6, unique=True)):
        obj[key] = draw(secret_text | long_text | json_values)
    if draw(st.booleans()):
        obj["tool_name"] = draw(st.sampled_from(["Bash", "Read", "Write", "Edit", "WebFetch",
                                                 "Grep", "Task", "mcp__gh__create_issue"])
                                | secret_text)
        obj["tool_input"] = draw(st.dictionaries(st.sampled_from(_TOOL_KEYS) | secret_text,
                                                 secret_text | json_values, max_size=4))
    if draw(st.booleans()):
        obj["tool_response"] = draw(json_values | long_text)
    return obj


def _encodings(draw, obj: object) -> bytes:
    how = draw(st.sampled_from([*ENCODERS, "escaping"]))
    if how == "escaping":
        chars = draw(st.text(alphabet=string.ascii_letters + string.digits + "/:_-.@=' ",
                             min_size=1, max_size=8))
        return escaping_encoder(chars)(obj)
    return ENCODERS[how](obj)


_TEXT_FIELDS = ("event_type", "session_id", "error", "cwd", "agent_id", "tool_name",
                "tool_use_id", "risk_reason", "file_path", "summary")


def _check_stored(stored: dict) -> None:
    for field in _TEXT_FIELDS:
        value = stored.get(field)
        if isinstance(value, str):
            assert redact_text(value) == (value, 0), (field, value)
    if "payload" in stored:
        assert redact_obj(stored["payload"]) == (stored["payload"], 0)
    if "raw" in stored:
        raw = raw_text(stored)
        # Every string the raw holds, read as a decoder would, is clean.
        for m in re.finditer(r'"((?:[^"\\]|\\[\s\S])*)"', raw):
            body = _unescaped(m.group(1))
            assert redact_text(body) == (body, 0), body
    # The sessions table, folded from the stored line as the viewer's server does.
    table = Sessions()
    row = table.apply(msgspec.json.decode(json.dumps(stored).encode(), type=EventView))
    if row is not None:
        for value in (row.cwd, row.project, row.model, row.last_summary, row.end_reason,
                      row.permission_mode, *(p.detail for p in row.pending)):
            if value:
                assert redact_text(value) == (value, 0), value


@st.composite
def encoded_hook_payloads(draw) -> tuple[bytes, int]:
    raw = _encodings(draw, draw(hook_payloads()))
    return raw, draw(st.integers(1, max(1, len(raw) - 1)))


@settings(max_examples=examples(700), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoded_hook_payloads())
@example((json.dumps({"hook_event_name": "PreToolUse", "cwd": CWD}).encode(), 40))
@example((json.dumps({"hook_event_name": "PreToolUse", "tool_name": "Bash",
                      "tool_input": {"command": "password:\nx"}}).encode(), 80))
def test_no_stored_text_holds_what_redaction_would_catch(case: tuple[bytes, int]) -> None:
    raw, cut = case
    _check_stored(build(raw))
    # The same payload cut by the hook, and malformed.
    _check_stored(build(raw[:cut], len(raw)))
    _check_stored(build(raw[:cut]))


@st.composite
def cut_secret_payloads(draw) -> tuple[bytes, int, list[str]]:
    """A payload holding a secret at its end, cut anywhere from well before it to after it."""
    which = draw(st.sampled_from(sorted(TOKENS) + ["named", "key"]))
    before = draw(LONG) + draw(st.sampled_from(ESCAPES_BEFORE + ["", " ", "=", ": ", "/", "(",
                                                                "'", "\\n"]))
    if which == "named":
        text, secret = draw(st.sampled_from(NAMED))
        tool_input: dict[str, object] = {"command": before + text}
    elif which == "key":
        secret = PASSWORD
        tool_input = {"x": before, draw(st.sampled_from(["password", "api_key", "Cookie"])): secret}
    else:
        secret = TOKENS[which][1]
        text = before + _token(which)
        tool_input = draw(st.sampled_from([{"command": text}, {text: 1}, {"a": [1, text]}]))
    obj = {"hook_event_name": "PreToolUse", "session_id": "s", "tool_name": "Bash",
           "tool_input": tool_input}
    raw = _encodings(draw, obj)
    # The secret sits near the end: cut from before its start to the end.
    back = draw(st.integers(0, min(len(raw) - 1, 6 * (len(secret) + 20) + 40)))
    return raw, len(raw) - back, [secret]


@settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut_secret_payloads())
def test_no_piece_of_a_secret_survives_a_cut(case: tuple[bytes, int, list[str]]) -> None:
    raw, cut, secrets = case
    for size in (len(raw), None):  # truncated by the hook, malformed (stdin timed out)
        stored = build(raw[:cut], size)
        assert not leaks(raw_text(stored), secrets), raw_text(stored)[-120:]
        assert not leaks(json.dumps(stored), secrets)
    # The same payload in a frame cut there, kept aside.
    frame = _frame(raw, b'"\\' * 8)  # quotes and backslashes in the id
    kept = Rejects.redacted(frame[: len(frame) - len(raw) - 9 + cut])
    assert not leaks(kept, secrets), kept[-120:]


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.data())
def test_needs_redaction_is_conservative_for_escaped_json(obj: object, data) -> None:
    """ASCII written as \\u00XX and "/" as "\\/" must not hide a secret from the pre-check."""
    out, n = redact_obj(obj)
    if out == obj and n == 0:
        return
    chars = data.draw(st.text(alphabet=string.ascii_letters + string.digits + "/:_-.@=' ",
                              min_size=1, max_size=8))
    assert needs_redaction(escaping_encoder(chars)(obj))


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(secret_text | st.sampled_from(
    ['"', '\\"', "\\u0041", "\\u00", "\\", "\\n", '": "', '{"', '"}', "\\/", "AKIAQ7W3",
     "ghp_Zq8", "eyJhbGci", "://u:p"]), max_size=12).map("".join))
def test_redact_raw_is_idempotent(text: str) -> None:
    once, n = redact_raw(text)
    assert isinstance(once, str) and n >= 0
    assert redact_raw(once) == (once, 0)
    once.encode("utf-8", "surrogateescape")  # storable: raises otherwise


def test_cut_markers_are_not_secrets() -> None:
    for text in ('"password": "[REDAC…', '"password": "[REDACTED:aws_k', "token='[…'",
                 '"password": "[REDACTED]'):
        assert redact_text(text) == (text, 0), text
    assert redact_text('"password": "hunter2…')[1] == 1
