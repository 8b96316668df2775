"""mpmd.model.redact: what is a secret, what is not, and the pre-check that must never miss one."""

from __future__ import annotations

import copy
import json

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mpmd.model.redact import (
    _MARKER,
    _SECRET_KEY,
    REDACTED,
    needs_redaction,
    redact_obj,
    redact_text,
)
from tests.utils import examples
from tests.utils import fixture_payloads as fixture_lines

# Sample secrets, built from pieces so that this file does not trip secret scanners.
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
ANTHROPIC = "sk-ant-" + "api03-" + "Xy9" * 10
OPENAI = "sk-" + "proj-" + "aB3dE5fG7hJ9kL1mN3pQ5rS7"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" * 4
GITLAB = "glpat-" + "x1Y2z3W4v5U6t7S8r9Q0"
SLACK = "xoxb-" + "1234567890-0987654321-AbCdEfGhIjKl"
GOOGLE = "AIza" + "SyD4-a1B2c3D4e5F6g7H8i9J0k1L2m3N4op"
STRIPE = "sk_live_" + "51H8abcDEF123ghiJKL456"
JWT = (
    "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x1\nQz9W\n-----END RSA PRIVATE KEY-----"
)

POSITIVE = [
    # (text, expected, count)
    (f"id {AWS_ID} here", "id [REDACTED:aws_key_id] here", 1),
    ("ASIA" + "Y34FZKBOKMUTVV7A", "[REDACTED:aws_key_id]", 1),
    (
        f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET} && ./deploy.sh",
        "export AWS_SECRET_ACCESS_KEY=[REDACTED] && ./deploy.sh",
        1,
    ),
    (f"aws_secret_access_key = {AWS_SECRET}\n", "aws_secret_access_key = [REDACTED]\n", 1),
    (f"key={ANTHROPIC}", "key=[REDACTED:anthropic]", 1),
    (f"OPENAI_API_KEY={OPENAI}", "OPENAI_API_KEY=[REDACTED]", 1),
    (f"use {OPENAI} now", "use [REDACTED:openai] now", 1),
    (f"clone https://{GITHUB}@github.com/a", "clone https://[REDACTED:github]@github.com/a", 1),
    (f"https://{GITHUB}:x-oauth@github.com", "https://[REDACTED:github]:[REDACTED]@github.com", 2),
    (GITHUB_PAT, "[REDACTED:github]", 1),
    ("gho_" + "z" * 36, "[REDACTED:github]", 1),
    (f"token: {GITLAB}", "token: [REDACTED]", 1),
    (f"{GITLAB}", "[REDACTED:gitlab]", 1),
    (f"SLACK={SLACK}", "SLACK=[REDACTED:slack]", 1),
    (f"maps?key={GOOGLE}&x=1", "maps?key=[REDACTED:google]&x=1", 1),
    (f"stripe {STRIPE}", "stripe [REDACTED:stripe]", 1),
    ("rk_live_" + "abcdef123456", "[REDACTED:stripe]", 1),
    (f"jwt {JWT} end", "jwt [REDACTED:jwt] end", 1),
    (
        'curl -H "Authorization: Bearer abc.def-123" https://api.example.com',
        'curl -H "Authorization: Bearer [REDACTED]" https://api.example.com',
        1,
    ),
    ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic [REDACTED]", 1),
    ('{"Authorization": "token abc123"}', '{"Authorization": "token [REDACTED]"}', 1),
    ("Cookie: sid=abc123; theme=dark", "Cookie: [REDACTED]", 1),
    (f"{PEM} after", "[REDACTED:pem] after", 1),
    (PEM.replace("\n", "\\n"), "[REDACTED:pem]", 1),  # literal \n, as inside a JSON string
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", "[REDACTED:pem]", 1),  # no END
    ("postgres://admin:hunter2@db:5432/app", "postgres://admin:[REDACTED]@db:5432/app", 1),
    ("redis://:s3cr3t@cache:6379", "redis://:[REDACTED]@cache:6379", 1),
    ("mysql -u root --password=hunter2 db", "mysql -u root --password=[REDACTED] db", 1),
    ("gh auth login --token abc123def", "gh auth login --token [REDACTED]", 1),
    ("DB_PASSWORD='p@ss word'", "DB_PASSWORD='[REDACTED]'", 1),
    ("PASSWORD='$ecret'", "PASSWORD='[REDACTED]'", 1),  # single quotes: literal
    ('{"password": "hunter2", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}', 1),
    ("client_secret: abcDEF123", "client_secret: [REDACTED]", 1),
    ("const apiKey = 'abc123';", "const apiKey = '[REDACTED]';", 1),
    ("STRIPE_KEY=xyz987", "STRIPE_KEY=[REDACTED]", 1),
    ("passwd=letmein", "passwd=[REDACTED]", 1),
    ("x-api-key: 0123456789abcdef", "x-api-key: [REDACTED]", 1),
    ('echo "{\\"token\\": \\"abc\\"}"', 'echo "{\\"token\\": \\"[REDACTED]\\"}"', 1),
    (f"AWS_ACCESS_KEY_ID={AWS_ID}", "AWS_ACCESS_KEY_ID=[REDACTED:aws_key_id]", 1),
    (f"a={AWS_ID} b={GITHUB}", "a=[REDACTED:aws_key_id] b=[REDACTED:github]", 2),
    ("token = self.token or 'abc123'", "token = self.token or 'abc123'", 0),  # expression
]

NEGATIVE = [
    "9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71",  # UUID (session ids)
    "toolu_01Bash0005",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # git SHA
    "/home/dev/shop/src/auth/login.ts",
    "/home/dev/.claude/projects/-home-dev-shop/9f1c2b7e.jsonl",
    "const b64 = 'aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBzZWNyZXQgYXQgYWxs';",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "max_tokens=4096",
    "input_tokens: 1200, output_tokens: 300",
    "token_count = 17",
    "tokenizer = AutoTokenizer.from_pretrained(name)",
    "password = None",
    "password: str",
    "token: string;",
    "api_key = os.environ['API_KEY']",
    "api_key = get_api_key()",
    "const token = process.env.GITHUB_TOKEN;",
    'export GITHUB_TOKEN="$GH_TOKEN"',
    "export GITHUB_TOKEN=$(gh auth token)",
    "TOKEN=${TOKEN:-}",
    "GOOGLE_APPLICATION_CREDENTIALS_FILE=/etc/gcp.json",
    "--token-file ~/.config/tok",
    "Provide credentials",
    "login now verifies passwords.",
    "The password is stored hashed.",
    "cache_key = 'user:' + uid",
    "primary_key=True",
    "task-001 risk-assessment desk-lamp",
    "https://example.com/path?q=1",
    "git@github.com:acme/shop.git",
    "user@example.com",
    "sk-learn is not a key",
    # near misses, one per token kind
    "AKIA" + "IOSFODNN7EXAMP",  # too short
    "XAKIA" + "IOSFODNN7EXAMPLE",  # glued to a word
    "sk-" + "abcdefghijklmnopqrstuvwxyz",  # no digit: a slug, not a key
    "ghp_" + "short123",
    "github_pat_" + "tooShort",
    "glpat-" + "short",
    "xoxb-" + "123",
    "AIza" + "tooShort",
    "sk_live_" + "abc",
    "eyJhbGciOiJIUzI1NiJ9",  # one segment
    "Bearer tokens are explained in RFC 6750",
    "Authorization: $TOKEN",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
    "http://user@example.com/path",
    "PASSWORD=[REDACTED]",
    '"password": "[REDACTED]"',
    "key [REDACTED:aws_key_id] here",
]


@pytest.mark.parametrize(("text", "expected", "count"), POSITIVE)
def test_redact_text_positive(text: str, expected: str, count: int) -> None:
    assert redact_text(text) == (expected, count)
    assert redact_text(expected) == (expected, 0)  # idempotent, counts 0 the second time
    if count:
        assert needs_redaction(json.dumps(text).encode())
        assert needs_redaction(json.dumps({"k": text}, ensure_ascii=False).encode())


@pytest.mark.parametrize("text", NEGATIVE)
def test_redact_text_negative(text: str) -> None:
    assert redact_text(text) == (text, 0)


def test_redact_text_counts_each_secret() -> None:
    text = f"{AWS_ID} {GITHUB} PASSWORD=x1 {JWT}"
    out, n = redact_text(text)
    assert n == 4
    assert AWS_ID not in out and GITHUB not in out and "x1" not in out and JWT not in out


def test_token_inside_a_name_is_not_missed() -> None:
    out, n = redact_text(f"a.{AWS_ID}.tokens=abc")
    assert AWS_ID not in out and n >= 1
    assert redact_text(out) == (out, 0)


def test_redact_text_non_str_and_empty() -> None:
    assert redact_text("") == ("", 0)
    assert redact_text(None) == (None, 0)  # type: ignore[arg-type]


# --- redact_obj ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password", "Password", "PASSWORD", "db_password", "passwd", "secret", "client_secret",
        "SECRET_KEY", "token", "access_token", "accessToken", "refresh_token", "id_token",
        "api_key", "apiKey", "API-KEY", "x-api-key", "access_key", "private_key", "privateKey",
        "authorization", "Authorization", "proxy-authorization", "cookie", "Set-Cookie",
        "credentials", "aws_secret_access_key", "GITHUB_TOKEN", "csrf_token", "session_key",
    ],
)
def test_secret_keys(key: str) -> None:
    obj = {key: "some value", "other": "kept"}
    assert redact_obj(obj) == ({key: REDACTED, "other": "kept"}, 1)


@pytest.mark.parametrize(
    "key",
    [
        "tokens_used", "max_tokens", "input_tokens", "output_tokens", "token_count",
        "cache_creation_input_tokens", "tokenCount", "token_type", "tokenizer", "tokens",
        "secret_name", "token_file", "password_file", "keyboard", "monkey", "key", "cache_key",
        "primary_key", "author", "auth_url", "credentials_path", "passwordHint", "token_limit",
        "session_id", "tool_use_id", "transcript_path",
    ],
)
def test_not_secret_keys(key: str) -> None:
    obj = {key: "some value"}
    assert redact_obj(obj) == (obj, 0)


def test_numbers_and_other_values_under_secret_keys() -> None:
    assert redact_obj({"password": 1234}) == ({"password": REDACTED}, 1)
    assert redact_obj({"client_secret": 3.5}) == ({"client_secret": REDACTED}, 1)
    # a number under a token key is a count, a bool is a flag, null is nothing
    obj = {"token": 5, "password_required": True, "secret": None, "api_key": ""}
    assert redact_obj(obj) == (obj, 0)
    # containers under a secret key are walked, not replaced wholesale
    assert redact_obj({"credentials": {"user": "bob", "password": "x"}}) == (
        {"credentials": {"user": "bob", "password": REDACTED}},
        1,
    )
    assert redact_obj({"password": REDACTED}) == ({"password": REDACTED}, 0)


def test_redact_obj_walks_lists_dicts_and_keys() -> None:
    obj = {
        "tool_input": {"command": f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET} && ./deploy.sh"},
        "list": [1, None, True, f"use {GITHUB}", [{"token": "t0k"}]],
        AWS_ID: "key as a key",
    }
    before = copy.deepcopy(obj)
    out, n = redact_obj(obj)
    assert obj == before  # input untouched
    assert out == {
        "tool_input": {"command": "export AWS_SECRET_ACCESS_KEY=[REDACTED] && ./deploy.sh"},
        "list": [1, None, True, "use [REDACTED:github]", [{"token": REDACTED}]],
        "[REDACTED:aws_key_id]": "key as a key",
    }
    assert n == 4
    assert out["list"] is not obj["list"]


def test_redact_obj_scalars_and_tuples() -> None:
    assert redact_obj(5) == (5, 0)
    assert redact_obj(None) == (None, 0)
    assert redact_obj(f"x {AWS_ID}") == ("x [REDACTED:aws_key_id]", 1)
    assert redact_obj(("a", {"password": "b"})) == (["a", {"password": REDACTED}], 1)
    assert redact_obj({1: "a", None: "b"}) == ({1: "a", None: "b"}, 0)


def test_redact_obj_deep_nesting() -> None:
    depth = 50_000
    deep: object = f"secret is {AWS_ID}"
    for i in range(depth):
        deep = [deep] if i % 2 else {"a": deep}
    out, n = redact_obj(deep)
    assert n == 1
    for i in reversed(range(depth)):
        out = out[0] if i % 2 else out["a"]
    assert out == "secret is [REDACTED:aws_key_id]"


def test_markers_are_not_secret_names() -> None:
    """A redacted key must not become a secret-looking key on the next pass."""
    kinds = ["pem", "jwt", "aws_key_id", "google", "anthropic", "openai", "stripe", "github",
             "gitlab", "slack"]
    for kind in kinds:
        marker = f"[REDACTED:{kind}]"
        assert _MARKER.fullmatch(marker)
        assert _SECRET_KEY.search(marker) is None, kind


# --- fixtures -----------------------------------------------------------------------------------


def test_fixtures_unchanged_except_the_aws_secret() -> None:
    changed = []
    for i, line in enumerate(fixture_lines()):
        obj = json.loads(line)
        out, n = redact_obj(obj)
        if out != obj or n:
            changed.append(i)
            assert obj["tool_input"]["command"].startswith("export AWS_SECRET_ACCESS_KEY=")
            expected = copy.deepcopy(obj)
            expected["tool_input"]["command"] = (
                "export AWS_SECRET_ACCESS_KEY=[REDACTED] && ./deploy.sh"
            )
            assert out == expected
            assert n == 1
            assert needs_redaction(line)
    assert len(changed) == 1


def test_fixture_precheck_is_mostly_negative() -> None:
    """The fast path must stay the common path: few false alarms on ordinary events."""
    lines = fixture_lines()
    flagged = [i for i, line in enumerate(lines) if needs_redaction(line)]
    assert len(lines) == 38
    assert len(flagged) <= 4, flagged


# --- properties ---------------------------------------------------------------------------------

FRAGMENTS = [
    "AKIA", "ASIA", "AIza", "IOSFODNN7EXAMPLE", "A1B2C3D4E5F6G7H8", "sk-", "sk-ant-", "sk_live_",
    "rk_test_", "ghp_", "gho_", "github_pat_", "glpat-", "xoxb-", "xapp-", "eyJ", "eyJhbGciOi",
    ".", "-----BEGIN ", "RSA ", "PRIVATE KEY-----", "-----END ", "://", "user", ":", "@", "host",
    "Authorization", "AUTHORIZATION", "authorization", "Bearer ", "Basic ", "Cookie", "cookie: ",
    "password", "Password", "PASSWORD", "passwd", "PassWD", "secret", "SECRET", "Secret",
    "credential", "CREDENTIALS", "token", "TOKEN", "Token", "tokens", "_count", "_KEY", "_key",
    "api_key", "API-KEY", "apiKey", "access_key", "SIGNING_KEY", "signingkey", "private_key",
    "PRIVATE_KEY", "key", "KEY", "session", "_id", "_file", "--", "-", "_", "=", ": ", '"', "'",
    "`", "\\", "\\n", "$", "${X}", "$(", ")", "(", "[", "]", "{", "}", ",", ";", "&", "|", " ",
    "\t", "\n", "\r", "\x00", "\x0b", "\x1f", "\x7f", "é", "\u017f", "\u212a", "\u0131",
    "\u0130", "\u2028", "😀", "0123456789", "abcdefghij", "ABCDEFGHIJ", "KZWXGJI", "kzwxgji",
    "[REDACTED]", "[REDACTED:github]", "None", "self.x", "x", "a1", "p@ss",
]
secret_text = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(st.characters(blacklist_categories=["Cs"]), max_size=4),
    ),
    max_size=14,
).map("".join)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        secret_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(secret_text, children, max_size=4),
    ),
    max_leaves=12,
)


def _encodings(obj: object) -> list[bytes]:
    return [
        json.dumps(obj).encode(),
        json.dumps(obj, ensure_ascii=False).encode(),
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(),
        msgspec.json.encode(obj),
    ]


@settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
@example({"Password": 12})
@example({"k": f"x {GOOGLE}"})
@example({"k": "PASSWORD\t=\t'x'"})
def test_needs_redaction_is_conservative(obj: object) -> None:
    out, n = redact_obj(obj)
    if out == obj and n == 0:
        return
    for raw in _encodings(obj):
        assert needs_redaction(raw), (raw, out)


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_redact_obj_is_idempotent(obj: object) -> None:
    before = copy.deepcopy(obj)
    once, _ = redact_obj(obj)
    assert obj == before
    twice, n = redact_obj(once)
    assert twice == once
    assert n == 0


@settings(max_examples=examples(500), deadline=None)
@given(secret_text)
def test_redact_text_never_raises_and_is_idempotent(text: str) -> None:
    once, n = redact_text(text)
    assert isinstance(once, str) and n >= 0
    assert redact_text(once) == (once, 0)
    if n:
        assert needs_redaction(text.encode())


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300))
def test_needs_redaction_any_bytes(raw: bytes) -> None:
    assert needs_redaction(raw) in (True, False)
