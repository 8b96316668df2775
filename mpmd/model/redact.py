"""Secrets out before anything is stored: a fast pre-check on the raw bytes, then redaction.

Pure functions, no I/O. The daemon calls ``needs_redaction(raw)`` on every payload; only when it
says yes does it decode the payload to plain objects and call ``redact_obj`` (the common event
carries no secret, and keeps its original bytes).

What is redacted (``redact_text``, on every string):

- token formats, replaced whole by ``[REDACTED:<kind>]``: AWS access key ids (``aws_key_id``:
  AKIA/ASIA + 16), Anthropic (``anthropic``: sk-ant-...) and OpenAI (``openai``: sk-... with a
  digit, 20+ chars) keys, GitHub tokens (``github``: ghp_/gho_/ghu_/ghs_/ghr_, github_pat_),
  GitLab (``gitlab``: glpat-), Slack (``slack``: xox[abposr]-, xapp-), Google API keys
  (``google``: AIza + 35), Stripe (``stripe``: sk_/rk_ live/test), JWTs (``jwt``:
  eyJ....eyJ....sig) and private key blocks (``pem``: BEGIN ... PRIVATE KEY through END, or to
  the end of the string when the END line is missing; literal ``\\n`` inside is fine).
- values whose name says secret, replaced by ``[REDACTED]`` while the name stays (the kind is
  the name): ``Authorization: Bearer|Basic|Token <value>``, ``Cookie: <value>``, the password of
  a URL (``scheme://user:[REDACTED]@host``), and assignments ``NAME=value``, ``NAME: value``,
  ``"NAME": "value"``, ``--name=value``, ``--name value`` where NAME contains (any case)
  password, passwd, secret, credential, token, or api/access/private/secret/signing/encryption/
  master/client/license/auth/session + key, or ends in upper-case ``_KEY``. Names that count or
  point rather than hold (``max_tokens``, ``input_tokens``, ``token_count``, ``*_FILE``,
  ``*_PATH``, ``*_URL``, ``*_ID``, ``tokenizer``...) are not secret; their values still get the
  token-format rules. Values that are not literals are kept: ``$VAR``/``${VAR}``/``$(cmd)``
  references (unless single-quoted), unquoted dotted names (``self.token``), calls
  (``get_token()``), ``None``/``null``/``true``/type names, obvious placeholders and markers
  cut short (``[REDAC…``). Inside quotes a backslash escapes the next character.

A token must start a word, and a backslash escape right before it (``\\n``, ``\\t``,
``\\u00e9``, ``\\x1b``, ``\\033``) does not glue it to one: ``x\\nAKIA...`` is redacted, as
JSON source text and as the string of a printf or echo -e.

``redact_obj`` walks dicts and lists (iteratively: any depth): a dict key that looks secret
(same words as above plus ``authorization`` and ``cookie``) with a non-empty string value has the
value replaced by ``[REDACTED]``; a number is replaced only under password/passwd/secret keys
(a number under a ``*token*`` key is a count, not a credential). Every other string, keys
included, goes through ``redact_text``. Redaction is idempotent: redacting twice gives the same
object as once, and the second pass counts 0.

``redact_raw`` is for payload text that did not decode (the ``raw`` of a cut or malformed
payload, bytes kept in rejected/): JSON source text, maybe cut anywhere. Each string literal is
read through its escapes and redacted as ``redact_obj`` redacts decoded strings (the value
under a secret key replaced), the whole text is redacted as text, and a token or URL password
the end cuts short (``...AKIAQ7W3``) is redacted from its prefix on.

What is *not* redacted, on purpose: git SHAs, UUIDs, ``toolu_...`` ids, paths, long base64 runs
without a known prefix, prose that merely mentions a password.

``needs_redaction`` is conservative: if ``redact_obj`` would change the decoded payload, it
returns True, for JSON as standard encoders write it (JSON.stringify, json.dumps with or without
ensure_ascii, msgspec: only ``"``, ``\\`` and control characters escaped, non-ASCII possibly as
``\\uXXXX``), and for JSON that escapes more: printable ASCII written ``\\u00XX`` (Go writes
``<>&`` so) makes it say yes, ``\\/`` (PHP) is read as ``/``. The daemon relies on a no for
every text it takes from the payload too (cwd, file_path, the summary built from its strings).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "REDACTED", "needs_redaction", "redact_obj", "redact_raw", "redact_raw_bytes", "redact_text",
]

REDACTED = "[REDACTED]"

# --- the secret-looking names --------------------------------------------------------------------

_KEY_PREFIXES = (
    "api", "access", "private", "secret", "signing", "encryption", "master", "client", "license",
    "auth", "session",
)
# Any case. ``_KEY`` alone only upper case: ``cache_key``/``primary_key`` in code are not secrets.
_KW = (
    r"(?i:passw(?:or)?d|secret|credential|token|(?:" + "|".join(_KEY_PREFIXES) + r")[_-]?key)"
    r"|_KEY(?![A-Za-z])"
)
# A name containing a keyword that still names something else than the secret itself.
_NOT_SECRET_NAME = re.compile(
    r"(?i:tokens|token_?(?:count|usage|budget|limit|type|ize|izer|ization)|tokeniz)"
    r"|(?:[_.-](?i:file|path|dir|url|uri|endpoint|name|id|type|count|len|length|limit|budget|"
    r"ttl|expiry|expires|expires_in|expires_at|enabled|required|hint|label|prompt|policy|mode|"
    r"format|version|provider|header|field|param|env|var|ref|arn)"
    r"|(?:File|Path|Dir|Url|URL|Uri|Name|Id|ID|Type|Count|Len|Length|Limit|Budget|Enabled|"
    r"Required|Hint|Label|Prompt|Policy|Mode|Format|Version|Provider|Header|Field|Param|Ref))$",
    re.ASCII,
)
_SECRET_KEY = re.compile(_KW + r"|(?i:authorization|cookie)", re.ASCII)
_NUMERIC_SECRET_KEY = re.compile(r"(?i:passw(?:or)?d|secret)", re.ASCII)
# Values that are not literals (placeholders, keywords, type names) stay.
_NOT_A_VALUE = re.compile(
    r"(?i:none|null|nil|true|false|undefined|str|string|bytes|int|number|bool|boolean|any|"
    r"object|optional|required|changeme|redacted|\*+|x{3,}|\.{3}|<[^<>]*>)"
    # A marker cut short ("[REDAC…": a summary or a detail cut to its length) hides nothing,
    # and taking it for a value would make a second pass redact again.
    r"|\[(?:R(?:E(?:D(?:A(?:C(?:T(?:E(?:D(?::[a-z_]*)?)?)?)?)?)?)?)?)?…?",
    re.ASCII,
)
_VAR_REF = re.compile(
    r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[^{}]*\}|\([^()]*\))|%[A-Za-z_][A-Za-z0-9_]*%"
)
_DOTTED = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)+")
_MARKER = re.compile(r"\[REDACTED(?::[a-z_]+)?\]")

# --- redact_text: one combined pattern, one alternative per kind ---------------------------------

_USER = r"[A-Za-z0-9._~%!$&'()*+,;=-]"
_PASS = r"[A-Za-z0-9._~%!$&'()*+,;=:-]"


def _value(tag: str) -> str:
    """A quoted literal (up to its closing quote) or a bare word ended by a delimiter."""
    # Inside quotes a backslash escapes the next character: "a\"b" is one value, not "a\".
    return (
        rf"(?:(?P<{tag}_q>\\?[\"'`])(?P<{tag}_vq>(?:(?!(?P={tag}_q))(?:[^\r\n\\]|\\.))+)"
        rf"|(?P<{tag}_vu>(?![-\[])[^\s\"'`;&|<>(){{}}\[\],\\]++)(?=[\s\"'`;&|<>)}}\],\\]|$))"
    )


# A token's first character must start a word, and an escape sequence right before it does not
# glue it to one: in JSON source text (the raw of a cut payload), and in the shell, C or JSON
# strings a command holds, "x\nAKIA..." is "x", a newline, then the key.
_ESCAPED = (
    r"(?<=\\[A-Za-z])|(?<=\\u[0-9A-Fa-f]{4})|(?<=\\x[0-9A-Fa-f]{2})|(?<=\\[0-7]{3})"
    r"|(?<=\\[0-9])"
)


def _start(word: str, first: str) -> str:
    """At a token starting with a character of ``first``, not preceded by a character of
    ``word`` unless that one ends an escape (both: bodies of a character class)."""
    # The lookahead first: sre tries every alternative at every position, and the escape
    # lookbehinds at each one made redaction four times slower.
    return rf"(?=[{first}])(?:(?<![{word}])|{_ESCAPED})"


_WHOLE_KINDS = {
    "pem": r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*)",
    "jwt": _start("A-Za-z0-9_-", "e")
    + r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
    "aws_key_id": _start("A-Za-z0-9", "A") + r"A(?:KI|SI)A[A-Z0-9]{16}(?![A-Za-z0-9])",
    "google": _start("A-Za-z0-9_-", "A") + r"AIza[A-Za-z0-9_-]{35}",
    "anthropic": _start("A-Za-z0-9_-", "s") + r"sk-ant-[A-Za-z0-9_-]{20,}",
    "openai": _start("A-Za-z0-9_-", "s") + r"sk-(?=[A-Za-z0-9_-]*?[0-9])[A-Za-z0-9_-]{20,}",
    "stripe": _start("A-Za-z0-9_", "sr") + r"[sr]k_(?:live|test)_[A-Za-z0-9]{10,}",
    "github": _start("A-Za-z0-9_", "g")
    + r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    "gitlab": _start("A-Za-z0-9_-", "g") + r"glpat-[A-Za-z0-9_-]{20,}",
    "slack": _start("A-Za-z0-9_-", "x") + r"(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}",
}
# Kinds that keep a prefix (the name) and redact one value group, ``<kind>_v`` or a _value().
_NAMED_KINDS = {
    "auth_header": (
        _start("A-Za-z0-9_", "AaPp")
        + r"(?i:(?:proxy-)?authorization)(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?[ \t]*"
        r"(?i:(?:bearer|basic|token|digest|bot|negotiate)[ \t]+)?"
        r"(?P<auth_header_v>[^\s\"'`,;\\]+)"
    ),
    "cookie_header": (
        _start("A-Za-z0-9_", "CcSs")
        + r"(?i:(?:set-)?cookie)(?:\\?[\"'])?[ \t]*:[ \t]*(?:\\?[\"'])?"
        r"(?P<cookie_header_v>[^\s\"'`\\,{}][^\r\n\"'`\\,{}]*)"
    ),
    "url_password": rf"(?<=[A-Za-z0-9])://{_USER}*:(?P<url_password_v>{_PASS}+)(?=@)",
    "cli_flag": (
        _start("A-Za-z0-9_-", "-")
        + rf"--(?=[A-Za-z0-9_-]*?(?:{_KW}))(?P<cli_flag_name>[A-Za-z0-9_-]++)"
        rf"[ \t]+{_value('cli_flag')}"
    ),
    "assign": (
        rf"(?<![A-Za-z0-9_.-])(?=[A-Za-z0-9_.-]*?(?:{_KW}))(?P<assign_name>[A-Za-z0-9_.-]++)"
        rf"(?:\\?[\"'])?[ \t]*(?::=|[:=])[ \t]*{_value('assign')}"
    ),
}
_FIXED_PREFIX = frozenset({"auth_header", "cookie_header"})  # a header name, nothing to hide
_SECRET_TEXT = re.compile(
    "|".join(f"(?P<{kind}>{pat})" for kind, pat in {**_WHOLE_KINDS, **_NAMED_KINDS}.items()),
    re.ASCII,
)


def _value_span(m: re.Match[str], kind: str) -> tuple[int, int, str | None]:
    """(start, end, quote) of the value to redact inside a named-kind match."""
    if kind in ("assign", "cli_flag"):
        if m.group(kind + "_vq") is not None:
            start, end = m.span(kind + "_vq")
            return start, end, m.group(kind + "_q")
        start, end = m.span(kind + "_vu")
        return start, end, None
    start, end = m.span(kind + "_v")
    return start, end, None


def _is_literal(value: str, quote: str | None) -> bool:
    if _NOT_A_VALUE.fullmatch(value):
        return False
    # A variable reference is not the secret itself, except single-quoted (literal in shells).
    if (quote is None or not quote.endswith("'")) and _VAR_REF.fullmatch(value):
        return False
    return not (quote is None and _DOTTED.fullmatch(value))


# --- where a match can start: the fast path of _redact -------------------------------------------
#
# The combined pattern costs about 1 us a character (sre tries every alternative at every
# position), so a flagged 8 MiB payload blocked the daemon's event loop for seconds. Every
# alternative starts at, or a bounded distance before, a literal that C-speed scanning finds:
# a token's prefix, a header's name, "://", or the name run around a secret-ish word. The
# pattern is then tried only at those starts, with match() on the whole text (lookbehinds and
# lookaheads see what the full pass sees), left to right as sub() does: since no match can
# start anywhere else, the output is the full pass's, character for character.
#
# Scanned on the text's ASCII bytes: encoding with "replace" keeps one byte per character (a
# "?" for any other) so positions stay the same, and every pattern is re.ASCII, so only ASCII
# letters fold and no other character is in a name or a prefix. sre is slow on an alternation
# whose first characters are common letters (it tries it at nearly every position), so, as in
# needs_redaction, the bytes are lower-cased and a few rarer letters (k z j x w g) turned into
# \x01 in the same translate(), and the scan starts at \x01; the anchors without one of those
# letters get a bytes.find() each.
_SCAN_MARK = 1
_scan_table = bytearray(bytes(range(256)).lower())
_scan_table[_SCAN_MARK] = ord("?")  # a \x01 of the text is no name character
for _c in b"kzjxwgKZJXWG":
    _scan_table[_c] = _SCAN_MARK
_SCAN_TABLE = bytes(_scan_table)
# Each alternative is the anchor's rest after the marker, then the part before the marker as
# a lookbehind, then an empty group that names it: starting with a literal, an alternative
# that cannot match is skipped at once (sre checks a branch's first literal before trying it).
# The empty group's number indexes _ANCHOR_STARTS: how far before the marker a match can start
# (None: a secret-ish word of a name, see _name_starts). sre reports only the first
# alternative that matches at a marker, so alternatives that can match at the same one share
# their starts: "a" (AIza) is a prefix of "app-" and "ation".
_ANCHOR_ALTERNATIVES = (
    (rb"ia(?<=a\x01ia)", (1,)),  # AKIA
    (rb"-(?<=s\x01-)", (1,)),  # sk-, sk-ant-
    (rb"_live_", (1,)),  # [sr]k_live_
    (rb"_test_", (1,)),  # [sr]k_test_
    (rb"h[pousr]_", (0,)),  # ghp_ ...
    (rb"ithub_pat_", (0,)),
    (rb"lpat-", (0,)),  # glpat-
    (rb"o\x01[abposr]-", (0,)),  # xoxb- ...
    (rb"app-", (0, 2)),  # xapp-
    (rb"ation(?<=authori\x01ation)", (7, 13, 2)),  # (proxy-)authorization
    (rb"a(?<=ai\x01a)", (2,)),  # AIza
    (rb"ie(?<=coo\x01ie)", (3, 7)),  # (set-)cookie
    (rb"d(?<=pass\x01d)", None),  # passwd
    (rb"or(?<=pass\x01or)", None),  # password
    (rb"en(?<=to\x01en)", None),  # token
    (rb"ey", None),  # key
)
_ANCHORS = re.compile(
    rb"\x01(?:" + rb"|".join(p + rb"()" for p, _ in _ANCHOR_ALTERNATIVES) + rb")"
)
_ANCHOR_STARTS: list[tuple[int, ...] | None] = [(), *(s for _, s in _ANCHOR_ALTERNATIVES)]
# Anchors without a marker letter, or whose marker can end another's (eyJ: "eyk" + "ey"),
# found by bytes.find: (literal, how far before it a match can start; None: a word).
_FOUND_ANCHORS = ((b"ey\x01", 0), (b"-----be", 0), (b"asia", 0), (b"://", 0), (b"cre", None))
_NON_NAME_BEFORE = re.compile(rb".*[^a-z0-9_.\x01-]", re.S)  # backtracks: O(distance)
_NAME_WINDOW = 64


def _starts(text: str) -> list[int]:
    """Sorted positions of ``text`` that include every position where _SECRET_TEXT matches."""
    t = text.encode("ascii", "replace").translate(_SCAN_TABLE)
    starts: list[int] = []
    add = starts.append
    words: list[int] = []  # positions inside a secret-ish word
    search = _ANCHORS.search
    at = 0
    while (m := search(t, at)) is not None:
        h = m.start()
        at = h + 1  # not m.end(): anchors may overlap
        back = _ANCHOR_STARTS[m.lastindex or 0]
        if back is None:
            words.append(h)
        else:
            for n in back:
                add(h - n)
    for literal, before in _FOUND_ANCHORS:
        h = t.find(literal)
        while h >= 0:
            if before is None:
                words.append(h)
            else:
                add(h - before)
            h = t.find(literal, h + 1)
    if words:
        _name_starts(t, sorted(words), add)
    starts.sort()
    return starts


def _name_starts(t: bytes, words: list[int], add: Callable[[int], None]) -> None:
    """The starts of assign and cli_flag matches whose name holds a word at ``words``.

    assign starts where the run of name characters holding the word starts, cli_flag at a
    "--" inside that run before the word. A run met again (two words in one name) is neither
    walked back nor searched for "--" twice, so this is linear in the text at worst.
    """
    prev_k = -1
    prev_r = 0
    for h in words:
        floor = max(prev_k, 0)
        lo = max(floor, h - _NAME_WINDOW)
        while True:
            back = _NON_NAME_BEFORE.match(t, lo, h)
            if back is not None:
                r = back.end()
                break
            if lo == floor:
                r = floor
                break
            lo = max(floor, 2 * lo - h)
        if prev_k >= 0 and r == prev_k:
            r, dashes_from = prev_r, prev_k
        else:
            dashes_from = r
            add(r)
        d = t.find(b"--", dashes_from, h)
        while d >= 0:
            add(d)
            d = t.find(b"--", d + 1, h)
        prev_k, prev_r = h, r


def _sub_at_starts(text: str, replace: Callable[[re.Match[str]], str]) -> str:
    """``_SECRET_TEXT.sub(replace, text)``, trying the pattern only where it can match."""
    out: list[str] = []
    pos = 0
    match = _SECRET_TEXT.match
    for c in _starts(text):
        if c < pos:
            continue
        m = match(text, c)
        if m is None:
            continue
        out += (text[pos:c], replace(m))
        pos = m.end()
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


# Below this length the full pass is cheap enough, and the scan's fixed cost is not worth it.
_SPARSE_FROM = 64


def _redact(text: str, counter: list[int], sparse_from: float) -> str:
    def replace(m: re.Match[str]) -> str:
        kind = m.lastgroup or ""
        if kind in _WHOLE_KINDS:
            counter[0] += 1
            return f"[REDACTED:{kind}]"
        whole = m.group()
        base = m.start()
        start, end, quote = _value_span(m, kind)
        prefix, value = whole[: start - base], whole[start - base : end - base]
        # The prefix is not looked at by this match: a token can hide in a URL's user name or in
        # a dotted name (a.AKIA....password=). Once the name is cut by a marker, the value goes
        # too: a second pass must not see a different name and decide differently.
        before = counter[0]
        new_prefix = prefix if kind in _FIXED_PREFIX else _redact(prefix, counter, sparse_from)
        name = m.group(kind + "_name") if kind in ("assign", "cli_flag") else None
        if _MARKER.fullmatch(value):
            secret = False
        elif name is not None and counter[0] != before:
            secret = True
        else:
            secret = (name is None or _NOT_SECRET_NAME.search(name.lstrip("-")) is None) and (
                _is_literal(value, quote)
            )
        if secret:
            counter[0] += 1
            return new_prefix + REDACTED + whole[end - base :]
        # Not a secret by its name; what it holds may still be one by its shape.
        return new_prefix + _redact(value, counter, sparse_from) + whole[end - base :]

    if len(text) < sparse_from:
        return _SECRET_TEXT.sub(replace, text)
    return _sub_at_starts(text, replace)


# Payloads repeat their short strings (keys, session ids, paths, tool names): a bounded memo of
# redact_text's answers makes a flagged payload cost a dict lookup per such string instead of a
# pre-check (~1.5 us) or a full pass (~20 us). Cleared whole when full: no eviction order to keep.
_MEMO_MAX_ENTRIES = 4096
_MEMO_MAX_CHARS = 256
_memo: dict[str, tuple[str, int]] = {}


def redact_text(s: str) -> tuple[str, int]:
    """``s`` with secret-looking substrings replaced, and how many were replaced."""
    if not s or not isinstance(s, str):
        return s, 0
    if len(s) > _MEMO_MAX_CHARS:
        return _redact_text(s)
    done = _memo.get(s)
    if done is None:
        if len(_memo) >= _MEMO_MAX_ENTRIES:
            _memo.clear()
        done = _memo[s] = _redact_text(s)
    return done


def _redact_text(s: str, sparse_from: float | None = None) -> tuple[str, int]:
    if not needs_redaction(s.encode("utf-8", "surrogatepass")):
        return s, 0
    if sparse_from is None:
        sparse_from = _SPARSE_FROM
    counter = [0]
    out = _redact(s, counter, sparse_from)
    # A marker can expose a name that was glued to a token (AKIA..._KEY=x): repeat until
    # nothing changes, so that redacting twice is redacting once. Each change turns text into
    # a marker, so this ends; almost always after one more pass, and only when there was a hit.
    done = 0
    while counter[0] != done:
        done = counter[0]
        out = _redact(out, counter, sparse_from)
    return out, counter[0]


def _redact_text_full(s: str) -> tuple[str, int]:
    """``_redact_text`` by the full pass only, everywhere: what the fast path must equal."""
    return _redact_text(s, sparse_from=float("inf"))


# --- redact_raw: payload text that did not decode -----------------------------------------------
#
# The raw of a cut or malformed payload is JSON *source* text: its strings hold escapes
# ("\n", "\u0041", "\"") where the decoded strings redact_obj sees hold characters, its keys
# sit apart from their values, and a cut can end it in the middle of a token. So each string
# literal is read as the decoder would read it and redacted like a decoded string (with the
# value under a secret key replaced, as redact_obj does), then the whole text is redacted as
# text (what is outside strings, text that is not JSON at all), then a token cut short at
# the end is redacted too.

_JSON_STRING = re.compile(r'"((?:[^"\\]++|\\[\s\S])*+)("?)')
_KEY_COLON = re.compile(r"[ \t\r\n]*:[ \t\r\n]*")
_JSON_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_UNESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|([\"\\/bfnrt]))")
_UNESCAPED = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
              "t": "\t"}  # fmt: skip
_PARTIAL_U = re.compile(r"u[0-9A-Fa-f]{0,3}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unescape(body: str) -> str:
    """A JSON string literal's body as the decoder reads it; an invalid escape stays as is."""
    if "\\" not in body:
        return body
    try:
        decoded: str = json.loads('"' + body + '"', strict=False)
        return decoded
    except ValueError:
        return _UNESCAPE.sub(
            lambda m: chr(int(m.group(1), 16)) if m.group(1) else _UNESCAPED[m.group(2)], body
        )


def _unfinished_escape(body: str) -> int:
    """Where an escape the cut left unfinished (``\\u`` and fewer than four hex digits) starts
    at the end of a string's body, or -1."""
    at = body.rfind("\\", max(0, len(body) - 5))
    if at < 0 or not _PARTIAL_U.fullmatch(body, at + 1):
        return -1
    run = at
    while run > 0 and body[run - 1] == "\\":
        run -= 1
    return at if (at - run) % 2 == 0 else -1  # else an escaped backslash, then a plain "u"


def _escape(text: str) -> str:
    """``text`` as a JSON string literal's body."""
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    # A lone surrogate (from a \udXXX escape or a byte that was not UTF-8) as an escape, so
    # that the result encodes to UTF-8 whatever it held.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", body)


# The start of a token whose end the cut took: the token's prefix (as in _WHOLE_KINDS) and at
# least one more character, up to the end; or a URL's password before its "@". A complete
# token at the end is one of _WHOLE_KINDS already.
_TAIL_KINDS = {
    "jwt": _start("A-Za-z0-9_-", "e") + r"eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){0,2}",
    "aws_key_id": _start("A-Za-z0-9", "A") + r"A(?:KI|SI)A[A-Z0-9]+",
    "google": _start("A-Za-z0-9_-", "A") + r"AIza[A-Za-z0-9_-]+",
    "anthropic": _start("A-Za-z0-9_-", "s") + r"sk-ant-[A-Za-z0-9_-]+",
    "openai": _start("A-Za-z0-9_-", "s") + r"sk-[A-Za-z0-9_-]+",
    "stripe": _start("A-Za-z0-9_", "sr") + r"[sr]k_(?:live|test)_[A-Za-z0-9]+",
    "github": _start("A-Za-z0-9_", "g") + r"(?:gh[pousr]_[A-Za-z0-9]+|github_pat_[A-Za-z0-9_]+)",
    "gitlab": _start("A-Za-z0-9_-", "g") + r"glpat-[A-Za-z0-9_-]+",
    "slack": _start("A-Za-z0-9_-", "x") + r"(?:xox[abposr]|xapp)-[A-Za-z0-9-]+",
    "url_password": rf"(?<=[A-Za-z0-9])://{_USER}*:(?P<url_password_v>{_PASS}+)",
}
_TAIL = re.compile(
    "(?:" + "|".join(f"(?P<{kind}>{pat})" for kind, pat in _TAIL_KINDS.items()) + ")"
    r"(?:\\(?:u[0-9A-Fa-f]{0,3})?)?\Z",  # and an escape the cut left unfinished
    re.ASCII,
)
# How far back from the end a cut token may start: every token format but a JWT is under
# 200 characters, and a JWT rarely passes a few kilobytes. Bounded, so that a long run of
# base64 at the end of an 8 MiB payload costs no more than a short one.
_TAIL_WINDOW = 8192


def _redact_tail(text: str) -> tuple[str, int]:
    m = _TAIL.search(text, max(0, len(text) - _TAIL_WINDOW))
    if m is None:
        return text, 0
    kind = m.lastgroup or ""
    if kind == "url_password":
        return text[: m.start("url_password_v")] + REDACTED, 1
    return text[: m.start()] + f"[REDACTED:{kind}]", 1


# A literal this long that was read decoded is left out of the pass over the whole text (a
# placeholder stands in for its body), so that the common large raw, one long string full of
# escapes, is scanned once and not twice: the scan costs about 1 us a character.
_SKIP_LONGER_THAN = 1024
_PLACEHOLDER = "\ue000"  # a private-use character: no payload has a reason to hold one
_PLACEHOLDER_AT = re.compile("\ue000([\ue001-\uf8ff]{3})")


def _placeholder(index: int) -> str:
    digits = []
    for _ in range(3):
        index, digit = divmod(index, 0xF8FF - 0xE001 + 1)
        digits.append(chr(0xE001 + digit))
    return _PLACEHOLDER + "".join(digits)


def _placeholder_index(digits: str) -> int:
    index = 0
    for ch in reversed(digits):
        index = index * (0xF8FF - 0xE001 + 1) + ord(ch) - 0xE001
    return index


def _redact_literals(text: str) -> tuple[str, int, list[str]]:
    """``text`` with its JSON string literals redacted as redact_obj redacts decoded strings,
    and how many secrets that replaced; long literals it read decoded are replaced by
    placeholders, their redacted bodies in the list returned (see _SKIP_LONGER_THAN)."""
    count = 0
    out: list[str] = []
    bodies: list[str] = []
    skip = _PLACEHOLDER not in text
    done = 0  # text[:done] is in out
    secret_value_at = -1  # where a string under a secret key starts
    for m in _JSON_STRING.finditer(text):
        start, end = m.span()
        body, closed = m.group(1), m.group(2)
        if start == secret_value_at:
            # Replaced whatever it holds, as redact_obj does; a cut one too.
            if body and _unescape(body) != REDACTED:
                count += 1
                out += (text[done:start], '"', REDACTED, closed)
                done = end
            continue
        colon = _KEY_COLON.match(text, end) if closed else None
        if colon is None and closed and "\\" not in body:
            continue  # reads as it stands: the pass over the whole text redacts it
        partial = ""
        if not closed and end == len(text) and (at := _unfinished_escape(body)) >= 0:
            body, partial = body[:at], body[at:]
        decoded = _unescape(body)
        new, n = redact_text(decoded)
        if not closed:
            new, cut = _redact_tail(new)
            n += cut
        if colon is not None:
            # A key: decided on the redacted key, as redact_obj decides.
            secret_str, secret_num = _secret_key(new)
            value_at = colon.end()
            if secret_str and text.startswith('"', value_at):
                secret_value_at = value_at
            elif secret_num and (number := _JSON_NUMBER.match(text, value_at)) is not None:
                count += n + 1
                out += (text[done:start], '"', _escape(new) if n else body, closed,
                        text[end:value_at], '"', REDACTED, '"')
                done = number.end()
                continue
        count += n
        if skip and colon is None and len(body) > _SKIP_LONGER_THAN:
            bodies.append(_escape(new) + partial if n else body + partial)
            out += (text[done:start], '"', _placeholder(len(bodies) - 1), closed)
            done = end
        elif n:
            out += (text[done:start], '"', _escape(new), partial, closed)
            done = end
    if not out:
        return text, 0, bodies
    out.append(text[done:])
    return "".join(out), count, bodies


def redact_raw(text: str) -> tuple[str, int]:
    """Payload text that did not decode as JSON (cut, malformed, kept aside) with the secrets
    in it replaced, and how many were replaced.

    What redact_obj would replace in the decoded payload is replaced in its JSON source, also
    behind escapes and in a cut string; what redact_text would replace in the text as it
    stands too; and a token or URL password cut short at the end of the text.
    """
    if not text or not isinstance(text, str):
        return text, 0
    text, count, bodies = _redact_literals(text)
    text, n = redact_text(text)
    count += n
    if bodies:
        # A placeholder the pass over the text took into a secret's value goes with it.
        text = _PLACEHOLDER_AT.sub(lambda m: bodies[_placeholder_index(m.group(1))], text)
    text, n = _redact_tail(text)
    return text, count + n


def redact_raw_bytes(data: bytes) -> tuple[bytes, int]:
    """``redact_raw`` for bytes that may not be text (bytes that are not UTF-8 come back as
    they were, around the replaced secrets)."""
    text, count = redact_raw(data.decode("utf-8", "surrogateescape"))
    if not count:
        return data, 0
    return text.encode("utf-8", "surrogateescape"), count


# --- redact_obj ----------------------------------------------------------------------------------


_key_memo: dict[str, tuple[bool, bool]] = {}


def _secret_key(key: str) -> tuple[bool, bool]:
    """(a non-empty string under ``key`` is a credential, a number under it is one)."""
    known = _key_memo.get(key)
    if known is None:
        named = _NOT_SECRET_NAME.search(key) is None
        known = (
            named and _SECRET_KEY.search(key) is not None,
            named and _NUMERIC_SECRET_KEY.search(key) is not None,
        )
        if len(_key_memo) >= _MEMO_MAX_ENTRIES:
            _key_memo.clear()
        if len(key) <= _MEMO_MAX_CHARS:
            _key_memo[key] = known
    return known


def _secret_value(key: str, value: Any) -> bool:
    """Whether a dict item is a credential by its key (the value is a str or a number)."""
    if isinstance(value, str):
        return bool(value) and _secret_key(key)[0]
    return _secret_key(key)[1]


def redact_obj(obj: Any) -> tuple[Any, int]:
    """A redacted copy of a decoded JSON value, and the number of redactions.

    Dicts and lists (tuples become lists) are always rebuilt, the input is never mutated;
    strings go through ``redact_text``; other scalars are kept. Walks with an explicit stack, so
    nesting depth is not limited by Python's recursion limit.
    """
    count = 0
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        root: Any = {}
        stack: list[tuple[Any, Any, bool]] = [(root, iter(obj.items()), True)]
    elif isinstance(obj, (list, tuple)):
        root = []
        stack = [(root, iter(obj), False)]
    else:
        return obj, 0
    while stack:
        out, items, is_dict = stack[-1]
        for item in items:
            if is_dict:
                key, value = item
                if isinstance(key, str):
                    # Decided on the redacted key, so that a second pass decides the same.
                    key, n = redact_text(key)
                    count += n
                    if (
                        isinstance(value, (str, int, float))
                        and not isinstance(value, bool)
                        and _secret_value(key, value)
                    ):
                        if value != REDACTED:
                            count += 1
                        out[key] = REDACTED
                        continue
            else:
                value = item
            if isinstance(value, str):
                value, n = redact_text(value)
                count += n
            elif isinstance(value, (dict, list, tuple)):
                child: Any = {} if isinstance(value, dict) else []
                if is_dict:
                    out[key] = child
                else:
                    out.append(child)
                if isinstance(value, dict):
                    stack.append((child, iter(value.items()), True))
                else:
                    stack.append((child, iter(value), False))
                break
            if is_dict:
                out[key] = value
            else:
                out.append(value)
        else:
            stack.pop()
    return root, count


# --- needs_redaction: the pre-check on raw bytes -------------------------------------------------
#
# Python's re is slow on a case-insensitive alternation (~90 us for a 400-byte payload), fast on
# a pattern that starts with one rare literal (memchr). So one translate() both lower-cases the
# bytes and turns a few rare letters into \x01 (a byte JSON never contains raw: control
# characters are escaped), and every anchor that a redaction needs is written to start at such
# a letter. The letters: k z w (both cases, for the case-insensitive names) and x g J I (only
# the case the token formats use). Anchors without one of them ("secret", "credential" share
# "cre"; URL passwords share "://" and "@") get their own literal-prefix pattern.

_S_BOTH = b"kzw"
_S_ONE = b"xgJI"
_table = bytearray(bytes(range(256)).lower())
for _c in _S_BOTH + _S_BOTH.upper() + _S_ONE:
    _table[_c] = 1
_TABLE = bytes(_table)


def _tr(text: str, any_case: bool) -> bytes:
    """A bytes pattern for what ``text`` becomes after translate (any case or exactly)."""
    out = []
    for ch in text:
        variants = {ch.lower(), ch.upper()} if any_case else {ch}
        got = sorted({_TABLE[ord(v)] for v in variants})
        if len(got) == 1:
            out.append(re.escape(bytes(got)))
        else:
            out.append(b"[" + b"".join(re.escape(bytes([g])) for g in got) + b"]")
    return b"".join(out)


_M = b"\x01"
_B64 = rb"[a-z0-9_\x01-]"  # what [A-Za-z0-9_-] becomes


def _after(tail: str, before: str) -> bytes:
    """``tail`` (any case) right after the marker, checking ``before`` + marker behind it."""
    return _tr(tail, True) + b"(?<=" + _tr(before, True) + _M + _tr(tail, True) + b")"


# Factored by the byte after the marker: sre tries the alternatives one by one at each marker.
_PRE_RARE = re.compile(
    _M
    + b"(?:"
    + b"|".join(
        [
            # token; key after _ - or space (also PEM "PRIVATE KEY") or after a known prefix
            b"e(?:n(?<=" + _tr("to", True) + _M + b"en)|y(?:(?<=[_ -]" + _M + b"ey)|(?<=(?:"
            + b"|".join(_tr(p[-3:], True) for p in _KEY_PREFIXES) + b")" + _M + b"ey)))",
            _after("ie", "coo"),  # cookie
            _after("ation", "ori") + b"|app-|a" + _B64 + b"{16}",  # authorization; xapp-; ASIA
            _M + b"a" + _B64 + b"{16}",  # AKIA, AIza
            _after("ord", "pass") + b"|o" + _M + b"[abposr]-",  # password; xoxb- ...
            _after("d", "pass"),  # passwd
            b"-(?<=s" + _M + b"-)" + _B64 + b"{20}",  # sk-...
            b"_(?:live|test)_",  # sk_live_, rk_test_ ...
            b"h[pousr]_|ithub_pat_|lpat-",  # ghp_ ..., github_pat_, glpat-
            b"(?<=ey" + _M + b")" + _B64 + b"{5,}+\\.ey" + _M,  # eyJ....eyJ (JWT)
        ]
    )
    + b")"
)
_PRE_CRE = re.compile(_tr("cre", True) + b"[td]")  # secret, credential
# Searched from "u00" (rare), not from the backslash (one every line in a tool's output).
_PRE_ASCII_ESCAPE = re.compile(rb"u00[2-7](?<=\\u00[2-7])")
_tr_class = rb"a-z0-9\x01"
_PRE_URL = re.compile(  # "\/" for "/": PHP writes URLs so by default
    rb":(?://|\\/\\/)[" + _tr_class + rb"._~%!$&'()*+,;=-]*:["
    + _tr_class + rb"._~%!$&'()*+,;=:-]+@"
)


def needs_redaction(raw: bytes) -> bool:
    """Whether the raw JSON payload may hold something ``redact_obj`` would redact.

    False means: certainly nothing to redact (for JSON from standard encoders, see the module
    docstring); True means: decode and run ``redact_obj`` (which may still find nothing).
    """
    t = bytes(raw).translate(_TABLE)
    # Printable ASCII written as \u00XX hides a name or a token from every anchor below.
    # Claude Code never writes it (Go escapes <>& so): such a payload goes the slow way.
    if 92 in t and _PRE_ASCII_ESCAPE.search(t) is not None:  # 92: a backslash
        return True
    return (
        _PRE_RARE.search(t) is not None
        or _PRE_CRE.search(t) is not None
        or (64 in t and _PRE_URL.search(t) is not None)  # 64: "@", an int keeps `in` on memchr
    )
