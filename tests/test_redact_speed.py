"""mpmd.model.redact's fast path: the combined pattern tried only where a match can start.

It must give what the full pass (``_SECRET_TEXT.sub`` at every position) gives, character for
character: the candidate starts must include every position where the pattern matches, and
the output of redact_text, redact_raw and redact_obj must not depend on the path taken."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mpmd.model import redact
from mpmd.model.redact import _SECRET_TEXT, _redact_text, _redact_text_full, _starts
from tests.test_redact import FRAGMENTS, json_values
from tests.utils import examples

# Sample secrets of every kind the module docstring names, built from pieces so that this
# file does not trip secret scanners.
SECRETS = [
    "AKIA" + "Q7W3E9R1T5Y2U8I4",
    "ASIA" + "Y34FZKBOKMUTVV7A",
    "sk-ant-" + "api03-Vb7Nm3Qw9Er1Ty5Ui2Op8As4Df6",
    "sk-" + "proj-Hj4Kl8Zx2Cv6Bn0Mq3We7Rt1",
    "ghp_" + "Zq8Lm3Np7Rt2Vx6Bc9Df4Gh1Jk5Ws0Ey",
    "gho_" + "z" * 36,
    "github_pat_" + "11ABCDEFG0" * 4,
    "glpat-" + "Pq9Wr2Et6Yu1Io5Ap8Sd3",
    "xoxb-" + "2468135790-1357924680-Qw7Er8Ty9Ui0",
    "xapp-" + "1-A0B1C2D3E4F5",
    "AIza" + "SyQ1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J",
    "AIza" + "pp-Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6",  # shares "a" with xapp- after the marker
    "sk_live_" + "51Hq8Rw3Ty7Ui2Op5As9Df",
    "rk_test_" + "abcdef123456",
    "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiJhZG1pbjQ3In0" + ".Xq3Vb8Nm2Lk7Jh4Gf9Ds1Pa6",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x1\nQz9W\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXk\\n",  # literal \n, no END
    "-----BEGIN EC PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "Authorization: Bearer " + "Br4rT0k3nV4lu3",
    "PROXY-AUTHORIZATION: basic dXNlcjpwYXNz",
    'authorization\\"=\\" token abc',
    "Cookie: sid=abc123; theme=dark",
    "Set-Cookie: a=b",
    "postgres://app:" + "Pg5ecr3tW0rd9" + "@db:5432/shop",
    "redis://:s3cr3t@cache",
    "https://" + "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2 + ":x-oauth@github.com",
    "DB_PASSWORD=" + "Hu7nT3r2Xq9Z",
    "PassWD = 'p@ss word'",
    "password: \"a\\\"b\"",
    '{"client_secret": "abcDEF123"}',
    "--token abc123def",
    "--api-key=xyz",
    "\\n--Password hunter2",
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG",
    "SIGNING_KEY=x1",
    "MY_KEY: v",
    "credentials=abc",
    "a.b.secret_token='t'",
    "self.token = token",
    "max_tokens=4096",
    "token_count: 5",
    "api_key = os.environ['API_KEY']",
    "TOKEN=${TOKEN:-}",
    "password=[REDACTED]",
]
# Pieces that put a secret right against something: escapes, words, other anchors, overlaps of
# anchors ("akiaiza", "aixapp-", "eykey", "passw-"), runs that tell names apart.
PIECES = FRAGMENTS + [
    "\\t", "\\u00e9", "\\x1b", "\\033", "\\5", "\\\\", '\\"', "\\'", "x", "X", "y", ".", "-",
    "--", "---", "-----", "_", "__", "\x01", "?", "\ud800", "\u0130", "\u212a", "İ", "ſ",
    "akiaiza", "AKIAIza", "aixapp-", "AIxapp-", "eykey", "eyJkey", "passw-", "xoxapp-",
    "keyghp_", "KEY", "Key", "_KEY", "_KEYS", "secrets", "tokenkey", "api", "access", "API_",
    "proxy-", "set-", "http", "s", "k", "sk", "rk", "gh", "ey", "J", "=", ":", ":=", " = ",
    "'", '"', "`", "\n", "\r\n", "@", "/", "a" * 70, "_" * 65, "x-" * 40, "9" * 130,
]
filler = st.text(st.sampled_from("abcxyzKWG09 _-.=:/'\"\\\n"), max_size=30)
piece = st.one_of(
    st.sampled_from(SECRETS),
    st.sampled_from(PIECES),
    st.sampled_from(PIECES),
    filler,
    st.text(max_size=4),
)
texts = st.lists(piece, max_size=40).map("".join)
# Long ones: longer than every window of the scan (64 characters back from a word, doubling).
long_texts = st.lists(
    st.one_of(piece, st.integers(100, 3000).map(lambda n: "y" * n),
              st.integers(100, 3000).map(lambda n: "A1_b-" * (n // 5))),
    max_size=30,
).map("".join)


def _match_starts(text: str) -> list[int]:
    return [p for p in range(len(text)) if _SECRET_TEXT.match(text, p) is not None]


@contextmanager
def _full_pass_only() -> Iterator[None]:
    """Every redaction in the block takes the full pass (the memos, shared by both paths,
    emptied so that a result of one path is not the answer of the other)."""
    saved = redact._SPARSE_FROM
    redact._SPARSE_FROM = float("inf")
    redact._memo.clear()
    try:
        yield
    finally:
        redact._SPARSE_FROM = saved
        redact._memo.clear()


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
@example("x akiaIza" + "A" * 40)
@example("\x01token=abc")
@example("a" * 200 + "_token=abc --x --api-key v")
@example("İpassword=x")
def test_every_match_start_is_a_candidate(text: str) -> None:
    missing = set(_match_starts(text)) - set(_starts(text))
    assert not missing, (sorted(missing), text)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(long_texts)
def test_every_match_start_is_a_candidate_in_long_texts(text: str) -> None:
    missing = set(_match_starts(text)) - set(_starts(text))
    assert not missing, (sorted(missing), text[:200])


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_fast_path_equals_full_pass(text: str) -> None:
    full = _redact_text_full(text)
    assert _redact_text(text, sparse_from=0) == full
    assert _redact_text(text) == full


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(long_texts)
def test_fast_path_equals_full_pass_in_long_texts(text: str) -> None:
    assert _redact_text(text, sparse_from=0) == _redact_text_full(text)


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(piece | st.sampled_from(
    ['"', '\\"', "\\u0041", "\\u00", "\\", "\\n", '": "', '{"', '"}', "\\/", "AKIAQ7W3",
     "ghp_Zq8", "eyJhbGci", "://u:p", '"password": "', '"token":', "y" * 1100]),
    max_size=30).map("".join))
def test_redact_raw_is_the_same_by_both_paths(text: str) -> None:
    redact._memo.clear()
    fast = redact.redact_raw(text)
    with _full_pass_only():
        assert redact.redact_raw(text) == fast


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, texts)
def test_redact_obj_is_the_same_by_both_paths(obj: object, text: str) -> None:
    obj = {"k": obj, "long": text * 3, text: [text]}
    redact._memo.clear()
    fast = redact.redact_obj(obj)
    with _full_pass_only():
        assert redact.redact_obj(obj) == fast


def _spread(size: int, secrets: int, seed: int, dense: bool = False) -> str:
    rng = random.Random(seed)
    words = ["lorem", "ipsum", "GET", "/api/v1/items", "200", "a.b", "x=1", "é", "\\n"]
    if dense:  # names and anchors everywhere
        words += ["token_count=5", "key", "--x", "AKIA", "http://", "Cookie", "passwords"]
    text = " ".join(rng.choice(words) for _ in range(size // 6))
    cuts = sorted(rng.randrange(len(text)) for _ in range(secrets))
    parts, at = [], 0
    for cut in cuts:
        parts += (text[at:cut], rng.choice(["", " ", "\n", "=", "\\n"]), rng.choice(SECRETS))
        at = cut
    parts.append(text[at:])
    return "".join(parts)


def test_fast_path_equals_full_pass_on_large_texts() -> None:
    cases = [(200_000, 0, False), (200_000, 3, False), (200_000, 300, True), (50_000, 30, True)]
    for seed, (size, secrets, dense) in enumerate(cases):
        text = _spread(size, secrets, seed, dense)
        assert _redact_text(text) == _redact_text_full(text)
