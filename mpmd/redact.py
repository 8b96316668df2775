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
  (``get_token()``), ``None``/``null``/``true``/type names and obvious placeholders.

``redact_obj`` walks dicts and lists (iteratively: any depth): a dict key that looks secret
(same words as above plus ``authorization`` and ``cookie``) with a non-empty string value has the
value replaced by ``[REDACTED]``; a number is replaced only under password/passwd/secret keys
(a number under a ``*token*`` key is a count, not a credential). Every other string, keys
included, goes through ``redact_text``. Redaction is idempotent: redacting twice gives the same
object as once, and the second pass counts 0.

What is *not* redacted, on purpose: git SHAs, UUIDs, ``toolu_...`` ids, paths, long base64 runs
without a known prefix, prose that merely mentions a password.

``needs_redaction`` is conservative: if ``redact_obj`` would change the decoded payload, it
returns True, for JSON as standard encoders write it (JSON.stringify, json.dumps with or without
ensure_ascii, msgspec: only ``"``, ``\\`` and control characters escaped, non-ASCII possibly as
``\\uXXXX``). Limitation: a producer that escapes plain ASCII on purpose (``\\u0041KIA...``,
``\\/``) can hide a secret from the pre-check; Claude Code does not.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "needs_redaction", "redact_obj", "redact_text"]

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
    r"object|optional|required|changeme|redacted|\*+|x{3,}|\.{3}|<[^<>]*>)",
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
    return (
        rf"(?:(?P<{tag}_q>\\?[\"'`])(?P<{tag}_vq>(?:(?!(?P={tag}_q))[^\r\n])+)"
        rf"|(?P<{tag}_vu>(?![-\[])[^\s\"'`;&|<>(){{}}\[\],\\]++)(?=[\s\"'`;&|<>)}}\],\\]|$))"
    )


_WHOLE_KINDS = {
    "pem": r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*)",
    "jwt": r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
    "aws_key_id": r"(?<![A-Za-z0-9])A(?:KI|SI)A[A-Z0-9]{16}(?![A-Za-z0-9])",
    "google": r"(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}",
    "anthropic": r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{20,}",
    "openai": r"(?<![A-Za-z0-9_-])sk-(?=[A-Za-z0-9_-]*?[0-9])[A-Za-z0-9_-]{20,}",
    "stripe": r"(?<![A-Za-z0-9_])[sr]k_(?:live|test)_[A-Za-z0-9]{10,}",
    "github": r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    "gitlab": r"(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,}",
    "slack": r"(?<![A-Za-z0-9_-])(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}",
}
# Kinds that keep a prefix (the name) and redact one value group, ``<kind>_v`` or a _value().
_NAMED_KINDS = {
    "auth_header": (
        r"(?i:\b(?:proxy-)?authorization)(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?[ \t]*"
        r"(?i:(?:bearer|basic|token|digest|bot|negotiate)[ \t]+)?"
        r"(?P<auth_header_v>[^\s\"'`,;\\]+)"
    ),
    "cookie_header": (
        r"(?i:\b(?:set-)?cookie)(?:\\?[\"'])?[ \t]*:[ \t]*(?:\\?[\"'])?"
        r"(?P<cookie_header_v>[^\s\"'`\\,{}][^\r\n\"'`\\,{}]*)"
    ),
    "url_password": rf"(?<=[A-Za-z0-9])://{_USER}*:(?P<url_password_v>{_PASS}+)(?=@)",
    "cli_flag": (
        rf"(?<![A-Za-z0-9_-])--(?=[A-Za-z0-9_-]*?(?:{_KW}))(?P<cli_flag_name>[A-Za-z0-9_-]++)"
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


def _redact(text: str, counter: list[int]) -> str:
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
        new_prefix = prefix if kind in _FIXED_PREFIX else _redact(prefix, counter)
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
        return new_prefix + _redact(value, counter) + whole[end - base :]

    return _SECRET_TEXT.sub(replace, text)


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


def _redact_text(s: str) -> tuple[str, int]:
    if not needs_redaction(s.encode("utf-8", "surrogatepass")):
        return s, 0
    counter = [0]
    out = _redact(s, counter)
    # A marker can expose a name that was glued to a token (AKIA..._KEY=x): repeat until
    # nothing changes, so that redacting twice is redacting once. Each change turns text into
    # a marker, so this ends; almost always after one more pass, and only when there was a hit.
    done = 0
    while counter[0] != done:
        done = counter[0]
        out = _redact(out, counter)
    return out, counter[0]


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
_tr_class = rb"a-z0-9\x01"
_PRE_URL = re.compile(
    rb"://[" + _tr_class + rb"._~%!$&'()*+,;=-]*:[" + _tr_class + rb"._~%!$&'()*+,;=:-]+@"
)


def needs_redaction(raw: bytes) -> bool:
    """Whether the raw JSON payload may hold something ``redact_obj`` would redact.

    False means: certainly nothing to redact (for JSON from standard encoders, see the module
    docstring); True means: decode and run ``redact_obj`` (which may still find nothing).
    """
    t = bytes(raw).translate(_TABLE)
    return (
        _PRE_RARE.search(t) is not None
        or _PRE_CRE.search(t) is not None
        or (64 in t and _PRE_URL.search(t) is not None)  # 64: "@", an int keeps `in` on memchr
    )
