"""policy.toml -> the compiled policy the hook loads (its layout: mpm_hook.policy).

Used by ``mpmd policy check``, by the daemon (its status keeps the compiled form in step),
and by the hook itself when it finds policy.toml changed since it was compiled: that is why
it lives in mpm_hook and needs only the standard library (``tomllib``, ``re`` to check
regular expressions). Never on the hook's usual path.

Every problem is a PolicyError whose message names the rule (its number, and name if it has
one) and the field; ``compile_text`` raises nothing else, for any input (tests/test_policy.py
fuzzes that).
"""

import marshal
import posix
import tomllib

from mpm_hook import policy as P
from mpm_hook.files import write_atomically

DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 590.0  # below Claude Code's default hook timeout (600 s)
MAX_FILE_BYTES = 1 << 20
MAX_RULES = 10_000
MAX_ALTERNATIVES = 256  # per pattern, once {a,b} and **/ are expanded
MAX_NAME_BYTES = 64
MAX_REASON_BYTES = 1000
RULE_KEYS = ("name", "action", "reason", "events", "tools", "command", "options", "pipe",
             "path", "cwd", "project", "timeout_s")
TOP_KEYS = ("version", "rule")


class PolicyError(ValueError):
    """A policy file mpmd cannot use; the message says where and why."""


# ---- files ----------------------------------------------------------------------------------
def compile_file(source):
    """The compiled record of the policy file at ``source`` (an absolute path)."""
    try:
        fd = posix.open(source, posix.O_RDONLY)
    except OSError as exc:
        raise PolicyError(f"cannot read it: {exc.strerror}") from None
    try:
        st = posix.fstat(fd)
        if st.st_size > MAX_FILE_BYTES:
            raise PolicyError(f"{st.st_size} bytes, more than the {MAX_FILE_BYTES} allowed")
        chunks = []
        while True:
            chunk = posix.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        raise PolicyError(f"cannot read it: {exc.strerror}") from None
    finally:
        posix.close(fd)
    return compile_text(b"".join(chunks), source, (st.st_ino, st.st_size, st.st_mtime_ns))


def refresh(source, compiled_path):
    """Compile ``source`` and write the result to ``compiled_path`` (for an invalid file, a
    record of why, so the hooks after observe without trying again). Returns the record."""
    try:
        record = compile_file(source)
    except PolicyError as exc:
        try:
            st = posix.stat(source)
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            signature = None
        record = error_record(source, signature, str(exc))
    write(compiled_path, record)
    return record


def error_record(source, signature, message):
    return (P.MAGIC, P.FORMAT, source, signature, message, (), _by_event(()), ())


def write(compiled_path, record):
    """Replace ``compiled_path`` atomically (owner-only, fsynced: a hook must never read
    half a file)."""
    # Unique per writer (hooks, the CLI and the daemon's threads may write at once).
    tmp = f"{compiled_path}.{posix.getpid()}-{posix.urandom(4).hex()}.tmp"
    write_atomically(tmp, compiled_path, marshal.dumps(record))


# ---- the policy -----------------------------------------------------------------------------
def compile_text(data, source="policy.toml", signature=None, home=None):
    """The compiled record of a policy file's contents (bytes or str); PolicyError for
    anything mpmd cannot use. ``~`` in paths is ``home`` (default: $HOME)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        doc = tomllib.loads(data)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise PolicyError("not valid TOML: nested too deeply") from None
    for key in doc:
        if key not in TOP_KEYS:
            raise PolicyError(f"unknown key {key!r} at the top (a rule starts with [[rule]])")
    version = doc.get("version", 1)
    if version != 1 or isinstance(version, bool):
        raise PolicyError(f"version = {version!r}: this mpmd reads version 1")
    tables = doc.get("rule", [])
    if not isinstance(tables, list):
        raise PolicyError("`rule` must be an array of tables: write each rule as [[rule]]")
    if len(tables) > MAX_RULES:
        raise PolicyError(f"{len(tables)} rules, more than the {MAX_RULES} allowed")
    rules = []
    names = {}
    if home is None:
        home = _home()
    for number, table in enumerate(tables, 1):
        if not isinstance(table, dict):
            raise PolicyError(f"rule {number}: must be a table ([[rule]] with key = value "
                              "lines)")
        rule = _rule(number, table, home)
        name = table.get("name")
        if name is not None:
            if name in names:
                raise PolicyError(f"rule {number} ({name}): name already used by rule "
                                  f"{names[name]}")
            names[name] = number
        rules.append(rule)
    rules = tuple(rules)
    return (P.MAGIC, P.FORMAT, source, signature, None, rules, _by_event(rules),
            _warnings(rules))


def _by_event(rules):
    """{event: ({tool: rules that may match it}, rules that may match any other tool)}:
    the tools named exactly somewhere get the rules whose `tools` match them (or that have
    none); any other tool can only match a rule without `tools` or with a glob there."""
    names = {p[1] for r in rules if r[P.R_TOOLS] for p in r[P.R_TOOLS] if p[0] == P.K_EXACT}
    index = {}
    for event in P.EVENTS:
        mine = [r for r in rules if event in r[P.R_EVENTS]]
        by_tool = {name: tuple(r for r in mine if r[P.R_TOOLS] is None
                               or P.any_match(r[P.R_TOOLS], name)) for name in sorted(names)}
        others = tuple(r for r in mine if r[P.R_TOOLS] is None
                       or any(p[0] != P.K_EXACT for p in r[P.R_TOOLS]))
        index[event] = (by_tool, others)
    return index


def _home():
    home = posix.environ.get(b"HOME")
    return home.decode("utf-8", "surrogateescape").rstrip("/") or "/" if home else None


def _rule(number, table, home):
    name = table.get("name")
    where = f"rule {number}" if not isinstance(name, str) else f"rule {number} ({name})"

    def fail(field, message):
        raise PolicyError(f"{where}: `{field}` {message}")

    for key in table:
        if key not in RULE_KEYS:
            raise PolicyError(f"{where}: unknown key {key!r} (known: {', '.join(RULE_KEYS)})")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            fail("name", "must be a non-empty string")
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            fail("name", f"is longer than {MAX_NAME_BYTES} bytes")
        if name.startswith("#"):
            fail("name", "may not start with # (mpmd names unnamed rules #1, #2, ...)")
    label = name if name is not None else f"#{number}"

    action = table.get("action")
    if action is None:
        fail("action", f"is missing: one of {', '.join(P.ACTIONS)}")
    if action not in P.ACTIONS:
        fail("action", f"= {action!r}: must be one of {', '.join(P.ACTIONS)}")

    reason = table.get("reason")
    if reason is None:
        reason = _default_reason(action, label)
    elif not isinstance(reason, str):
        fail("reason", "must be a string")
    elif len(reason.encode("utf-8", "surrogatepass")) > MAX_REASON_BYTES:
        fail("reason", f"is longer than {MAX_REASON_BYTES} bytes")

    timeout = table.get("timeout_s")
    if timeout is not None:
        if action != "remote":
            fail("timeout_s", "applies only to action = \"remote\"")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
                0 < timeout <= MAX_TIMEOUT_S):
            fail("timeout_s", f"must be a number of seconds above 0, at most {MAX_TIMEOUT_S:g}")
        timeout = float(timeout)
    elif action == "remote":
        timeout = DEFAULT_TIMEOUT_S

    events = _strings(table, "events", fail)
    if events is None:
        events = P.EVENTS
    else:
        for event in events:
            if event not in P.EVENTS:
                fail("events", f"has {event!r}: a policy decides only "
                               f"{' and '.join(P.EVENTS)}")
        events = tuple(e for e in P.EVENTS if e in events)

    tools = _patterns(table, "tools", fail, False, home)
    command = _patterns(table, "command", fail, False, home)
    path = _path_patterns(table, "path", fail, home)
    cwd = _path_patterns(table, "cwd", fail, home)

    options = _strings(table, "options", fail)
    if options is not None:
        compiled = []
        for spec in options:
            shorts = []
            longs = []
            for alternative in spec.split("|"):
                alternative = alternative.strip().lstrip("-")
                if not alternative or any(ch in alternative for ch in " \t=") or (
                        not alternative.isprintable()):
                    fail("options", f"has {spec!r}: each option is a letter or a long name "
                                    "(alternatives separated by |, as in \"r|R|recursive\")")
                if len(alternative) == 1:
                    shorts.append(alternative)
                else:
                    longs.append(alternative)
            compiled.append(("".join(shorts), tuple(longs)))
        options = tuple(compiled)

    pipe = _strings(table, "pipe", fail)
    if pipe is not None:
        if len(pipe) < 2:
            fail("pipe", "needs at least two patterns: a command and the one it pipes into")
        pipe = tuple(_compile(text, False, home, lambda m: fail("pipe", m)) for text in pipe)

    project = table.get("project")
    if project is not None:
        if project not in ("inside", "outside"):
            fail("project", f"= {project!r}: must be \"inside\" or \"outside\"")
        project = P.PROJECT_INSIDE if project == "inside" else P.PROJECT_OUTSIDE
    else:
        project = 0

    rule = [None] * 13
    rule[P.R_INDEX] = number
    rule[P.R_LABEL] = label
    rule[P.R_ACTION] = action
    rule[P.R_REASON] = reason
    rule[P.R_TIMEOUT] = timeout
    rule[P.R_EVENTS] = events
    rule[P.R_TOOLS] = tools
    rule[P.R_COMMAND] = command
    rule[P.R_OPTIONS] = options
    rule[P.R_PIPE] = pipe
    rule[P.R_PATH] = path
    rule[P.R_CWD] = cwd
    rule[P.R_PROJECT] = project
    return tuple(rule)


def _default_reason(action, label):
    return {
        "allow": f"allowed by the mpmd policy (rule {label})",
        "deny": f"denied by the mpmd policy (rule {label})",
        "ask": f"the mpmd policy asks for confirmation (rule {label})",
        "remote": f"sent to the mpmd viewer for approval (rule {label})",
    }[action]


def _strings(table, key, fail):
    """A field that is one string or a list of strings, as a tuple; None when absent."""
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        fail(key, "must be a string or a non-empty list of strings")
    for item in value:
        if not isinstance(item, str) or not item:
            fail(key, f"has {item!r}: every item must be a non-empty string")
    return tuple(value)


def _patterns(table, key, fail, path_mode, home):
    texts = _strings(table, key, fail)
    if texts is None:
        return None
    compiled = []
    for text in texts:
        compiled.extend(_compile(text, path_mode, home, lambda m: fail(key, m)))
    return tuple(compiled)


def _path_patterns(table, key, fail, home):
    """(absolute patterns, patterns relative to the project) for ``path`` and ``cwd``."""
    texts = _strings(table, key, fail)
    if texts is None:
        return None
    absolute = []
    relative = []
    for text in texts:
        for pattern, is_relative in _compile_path(text, home, lambda m: fail(key, m)):
            (relative if is_relative else absolute).append(pattern)
    return (tuple(absolute), tuple(relative))


# ---- patterns -------------------------------------------------------------------------------
def _compile(text, path_mode, home, fail):
    """Compiled patterns (one per alternative) for one glob or ``re:`` pattern."""
    if text.startswith("re:"):
        return (_regex(text, fail),)
    return tuple(_classify(tokens) for tokens in _alternatives(text, path_mode, fail))


def _compile_path(text, home, fail):
    if text.startswith("re:"):
        return ((_regex(text, fail), False),)
    if text == "~" or text.startswith("~/"):
        if home is None:
            fail(f"has {text!r}, but HOME is not set")
        text = _escape(home) + text[1:]
    elif text.startswith("~"):
        fail(f"has {text!r}: only ~ and ~/... (your own home folder) are understood")
    out = []
    for tokens in _alternatives(text, True, fail):
        relative = bool(tokens) and tokens[0] != "/" and tokens[0] != P.T_DSTAR and (
            tokens[0] != P.T_STAR)
        out.append((_classify(tokens), relative))
    return tuple(out)


def _escape(text):
    return "".join("\\" + ch if ch in "*?[]{}\\," else ch for ch in text)


def _regex(text, fail):
    import re

    try:
        re.compile(text[3:])
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        fail(f"has {text!r}: not a valid regular expression ({exc})")
    return (P.K_REGEX, text[3:])


def _alternatives(text, path_mode, fail):
    """The token lists of a glob, {a,b} alternatives expanded, and in paths the ``**/``
    that may match no folder at all (``a/**/b`` also as ``a/b``)."""
    found = []
    for alternative in _braces(text, fail):
        tokens = _tokens(alternative, path_mode, fail)
        variants = [tokens]
        if path_mode:
            variants = _zero_folders(tokens, fail)
        for variant in variants:
            if variant not in found:
                found.append(variant)
                if len(found) > MAX_ALTERNATIVES:
                    fail(f"has {text!r}: more than {MAX_ALTERNATIVES} alternatives")
    return found


def _braces(text, fail):
    """``text`` with its first top-level {a,b,...} expanded, recursively."""
    depth = 0
    start = None
    commas = []
    i = 0
    in_class = False
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if text[i + 1:i + 2] in ("!", "^"):
                i += 1
            if text[i + 1:i + 2] == "]":
                i += 1
        elif ch == "{":
            if depth == 0:
                start = i
                commas = []
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                if commas:
                    head = text[:start]
                    tail = text[i + 1:]
                    bounds = [start, *commas, i]
                    out = []
                    for a, b in zip(bounds, bounds[1:], strict=False):
                        for expanded in _braces(head + text[a + 1:b] + tail, fail):
                            out.append(expanded)
                            if len(out) > MAX_ALTERNATIVES:
                                fail(f"has {text!r}: more than {MAX_ALTERNATIVES} "
                                     "alternatives")
                    return out
                start = None
        elif ch == "," and depth == 1:
            commas.append(i)
        i += 1
    if depth:
        fail(f"has {text!r}: a {{ is not closed")
    return [text]


def _tokens(text, path_mode, fail):
    tokens = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                fail(f"has {text!r}: it ends with a lone \\")
            tokens.append(text[i + 1])
            i += 2
        elif ch == "*":
            stars = 1
            while i + stars < n and text[i + stars] == "*":
                stars += 1
            star = P.T_DSTAR if stars > 1 or not path_mode else P.T_STAR
            if not (tokens and tokens[-1] in (P.T_STAR, P.T_DSTAR)):
                tokens.append(star)
            elif star == P.T_DSTAR:
                tokens[-1] = P.T_DSTAR
            i += stars
        elif ch == "?":
            tokens.append(P.T_ANY_NAME if path_mode else P.T_ANY)
            i += 1
        elif ch == "[":
            i = _class(text, i, tokens, fail)
        else:
            tokens.append(ch)
            i += 1
    return tokens


def _class(text, i, tokens, fail):
    """A [...] class at ``i``: appends its token, returns the index after it."""
    start = i
    i += 1
    negated = text[i:i + 1] in ("!", "^")
    if negated:
        i += 1
    chars = []
    ranges = []
    first = True
    while True:
        if i >= len(text):
            fail(f"has {text!r}: the [ at {start + 1} is not closed")
        ch = text[i]
        if ch == "]" and not first:
            i += 1
            break
        if ch == "\\" and i + 1 < len(text):
            i += 1
            ch = text[i]
        first = False
        if text[i + 1:i + 2] == "-" and i + 2 < len(text) and text[i + 2] != "]":
            high = text[i + 2]
            if high == "\\" and i + 3 < len(text):
                high = text[i + 3]
                i += 1
            if high < ch:
                fail(f"has {text!r}: the range {ch}-{high} is reversed")
            ranges.append((ch, high))
            i += 3
        else:
            chars.append(ch)
            i += 1
    tokens.append((negated, "".join(chars), tuple(ranges)))
    return i


def _zero_folders(tokens, fail):
    """``**/`` at the start, ``/**/`` inside and ``/**`` at the end may also match no
    folder: each such place gives a variant without it."""
    found = [tokens]
    i = 0
    while i < len(found):
        current = found[i]
        for at, token in enumerate(current):
            if token != P.T_DSTAR:
                continue
            before = current[at - 1] if at > 0 else None
            after = current[at + 1] if at + 1 < len(current) else None
            if at == 0 and after == "/":
                shorter = current[2:]
            elif before == "/" and after == "/":
                shorter = current[:at] + current[at + 2:]
            elif before == "/" and after is None:
                shorter = current[:at - 1]
            else:
                continue
            if shorter not in found:
                found.append(shorter)
                if len(found) > MAX_ALTERNATIVES:
                    fail(f"more than {MAX_ALTERNATIVES} alternatives of **")
        i += 1
    return found


def _classify(tokens):
    """The cheapest matcher for a token list."""
    if all(t.__class__ is str for t in tokens):
        return (P.K_EXACT, "".join(tokens))
    if all(t.__class__ is str or t == P.T_DSTAR for t in tokens):
        pieces = [""]
        for t in tokens:
            if t == P.T_DSTAR:
                pieces.append("")
            else:
                pieces[-1] += t
        return (P.K_STARS, tuple(pieces))
    literals = []
    run = ""
    for t in tokens:
        if t.__class__ is str:
            run += t
        elif run:
            literals.append(run)
            run = ""
    if run:
        literals.append(run)
    return (P.K_GLOB, tuple(tokens), tuple(literals))


# ---- advice ---------------------------------------------------------------------------------
def _warnings(rules):
    """Rules that are probably not what their author meant (mpmd policy check shows them)."""
    out = []
    for at, rule in enumerate(rules):
        conditions = (rule[P.R_TOOLS], rule[P.R_COMMAND], rule[P.R_OPTIONS], rule[P.R_PIPE],
                      rule[P.R_PATH], rule[P.R_CWD])
        label = rule[P.R_LABEL]
        if all(c is None for c in conditions) and not rule[P.R_PROJECT]:
            later = [r for r in rules[at + 1:] if set(r[P.R_EVENTS]) & set(rule[P.R_EVENTS])]
            if later:
                out.append(f"rule {label} has no conditions: it decides every tool call of "
                           f"its events, so the {len(later)} rule(s) after it never decide")
        tools = rule[P.R_TOOLS]
        needs_bash = rule[P.R_COMMAND] is not None or rule[P.R_OPTIONS] is not None or (
            rule[P.R_PIPE] is not None)
        if needs_bash and tools is not None and not P.any_match(tools, "Bash"):
            out.append(f"rule {label} has command conditions (only Bash has a command) but "
                       "its tools do not include Bash: it never matches")
    return tuple(out)
