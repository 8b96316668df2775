"""The policy on the hook's path: load the compiled policy, read the event, find the first
rule that matches it, and say what to print (docs/policy.md has the rules' semantics).

The hook imports this module only for a PreToolUse or PermissionRequest event, and only when
a compiled policy exists in the state folder. Like the rest of mpm_hook it imports only what
``python -I -S`` has loaded (``marshal``, ``posix``) plus one C module: ``_json``, whose
scanner parses the payload (~0.3 ms to import; ``json`` itself would import ``re``, ~10 ms).
``re`` is imported only when a rule with a ``re:`` pattern is reached, and the compiler
(mpm_hook.policy_compile, which needs ``tomllib``) only when policy.toml changed since it was
compiled: the first hook to see the change compiles it for everyone after it.

The compiled form is one ``marshal``-ed tuple (the layout is the R_* and K_* constants
below; mpm_hook.policy_compile writes it): loading it is one read and one ``marshal.loads``.
"""

import _json
import marshal
import posix

MAGIC = "mpmd-policy"
FORMAT = 1
EVENTS = ("PreToolUse", "PermissionRequest")
ACTIONS = ("allow", "deny", "ask", "remote")

# The record: (MAGIC, FORMAT, source, signature, error, rules, by_event, warnings)
#   source     the policy.toml it was compiled from (absolute path)
#   signature  (st_ino, st_size, st_mtime_ns) of that file when it was read
#   error      None, or why the file cannot be used (the hook then observes)
#   rules      every rule, in file order
#   by_event   {event name: ({tool name: the rules that may match it}, the rules that may
#              match any other tool)}, in file order: a tool named exactly in some rule's
#              `tools` gets only the rules that can match it, so a 50-rule policy does not
#              mean 50 checks
REC_MAGIC, REC_FORMAT, REC_SOURCE, REC_SIGNATURE, REC_ERROR, REC_RULES, REC_BY_EVENT = range(7)
REC_WARNINGS = 7

# A rule: a tuple; absent conditions are None.
(R_INDEX, R_LABEL, R_ACTION, R_REASON, R_TIMEOUT, R_EVENTS, R_TOOLS, R_COMMAND, R_OPTIONS,
 R_PIPE, R_PATH, R_CWD, R_PROJECT) = range(13)
PROJECT_INSIDE = 1
PROJECT_OUTSIDE = 2

# A pattern: (K_EXACT, text) | (K_STARS, pieces) | (K_GLOB, tokens, literals) | (K_REGEX, src)
# K_STARS: literal pieces around "match anything" stars. K_GLOB tokens: a 1-character str
# (itself), or T_* below, or a class (negated, characters, ((low, high), ...)); ``literals``
# are its runs of literal characters in order, checked with str.find before the walk.
K_EXACT, K_STARS, K_GLOB, K_REGEX = range(4)
T_ANY = 1  # ? outside paths: any one character
T_ANY_NAME = 2  # ? in a path: any one character but /
T_STAR = 3  # * in a path: any characters but /
T_DSTAR = 4  # ** (and * outside paths): any characters


class Decision:
    """What the first matching rule says about one event."""

    __slots__ = ("action", "event", "index", "reason", "rule", "timeout_s")

    def __init__(self, rule, event):
        self.action = rule[R_ACTION]
        self.event = event
        self.index = rule[R_INDEX]
        self.rule = rule[R_LABEL]
        self.reason = rule[R_REASON]
        self.timeout_s = rule[R_TIMEOUT]

    def record(self):
        """The decision as the frame carries it and the journal stores it."""
        record = {"action": self.action, "rule": self.rule, "rule_index": self.index,
                  "reason": self.reason}
        if self.action == "remote":
            record["timeout_s"] = self.timeout_s
        return record

    def output(self, verdict=None):
        """The bytes to print for Claude Code, or None (print nothing). ``verdict``, for a
        ``remote`` rule: (behavior, message) from the viewer, or None (no answer)."""
        if self.action == "remote":
            return None if verdict is None else output(self.event, verdict[0], verdict[1])
        return output(self.event, self.action, self.reason)


def output(event, action, reason):
    """Exactly what Claude Code expects on stdout for this decision, or None when nothing
    is to be printed (an ask on a PermissionRequest: Claude Code then asks as usual)."""
    if event == "PreToolUse" and action in ("allow", "deny", "ask"):
        return ('{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "'
                + action + '", "permissionDecisionReason": '
                + _json.encode_basestring_ascii(reason) + "}}\n").encode()
    if event == "PermissionRequest" and action in ("allow", "deny"):
        return ('{"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": '
                '{"behavior": "' + action + '", "message": '
                + _json.encode_basestring_ascii(reason) + "}}}\n").encode()
    return None


# ---- the hook's entry -----------------------------------------------------------------------
def decide_for_hook(fd, compiled_path, payload, environ, refresh):
    """(Decision or None, a line for the hook log or None), for the event in ``payload``,
    by the compiled policy open on ``fd``. Raises only on a bug; the hook then observes."""
    record, note = load(fd, compiled_path, refresh)
    if record is None:
        return None, note
    home = environ.get(b"HOME")
    project = environ.get(b"CLAUDE_PROJECT_DIR")
    event = read_event(payload, project and project.decode("utf-8", "surrogateescape"),
                       home and home.decode("utf-8", "surrogateescape"))
    if event is None:
        return None, note
    return decide(record, event), note


def load(fd, compiled_path, refresh):
    """(record or None, note or None): the compiled policy, recompiled first when its
    policy.toml changed since, by ``refresh(source, compiled_path)`` (the compiler's
    mpm_hook.policy_compile.refresh: the caller imports it, and only when it must, since
    tomllib costs ~20 ms). None when there is no usable policy: the hook observes."""
    size = posix.fstat(fd).st_size
    chunks = []
    while size > 0:
        chunk = posix.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    try:
        record = marshal.loads(b"".join(chunks))
        source = record[REC_SOURCE]
        if record[REC_MAGIC] != MAGIC or source.__class__ is not str:
            raise ValueError("not a compiled policy")
    except Exception as exc:  # noqa: BLE001 - any damage: remove it, say so once
        _unlink(compiled_path)
        return None, f"compiled policy {compiled_path} unreadable, removed ({exc!r}): observing"
    try:
        st = posix.stat(source)
    except FileNotFoundError:
        # policy.toml was deleted: no policy. Removing the compiled form brings the hooks
        # after this one back to the cost of no policy (one failed open).
        _unlink(compiled_path)
        return None, None
    note = None
    if record[REC_FORMAT] != FORMAT or record[REC_SIGNATURE] != (
            st.st_ino, st.st_size, st.st_mtime_ns):
        record = refresh(source, compiled_path)
        if record[REC_ERROR] is not None:
            note = f"policy {source} is invalid, observing until it is fixed: {record[REC_ERROR]}"
    if record[REC_ERROR] is not None:
        return None, note
    return record, note


def _unlink(path):
    try:  # noqa: SIM105 - contextlib is not loaded under -I -S
        posix.unlink(path)
    except OSError:
        pass


def decide(record, event):
    """The Decision of the first rule of ``record`` that matches ``event``, or None."""
    by_tool, others = record[REC_BY_EVENT][event.name]
    for rule in by_tool.get(event.tool, others):
        if check(rule, event) is None:
            return Decision(rule, event.name)
    return None


# ---- the event ------------------------------------------------------------------------------
class _JsonContext:
    """What _json.make_scanner reads from json.JSONDecoder, without importing json."""

    strict = False
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


_scan = _json.make_scanner(_JsonContext)  # type: ignore[arg-type]
_JSON_SPACE = " \t\n\r"


def parse_json(text):
    """The JSON value in ``text``; ValueError (or StopIteration) when it is not one."""
    start = 0
    while start < len(text) and text[start] in _JSON_SPACE:
        start += 1
    value, end = _scan(text, start)
    if text[end:].strip(_JSON_SPACE):
        raise ValueError("extra data after the JSON value")
    return value


class Event:
    """The fields of a PreToolUse or PermissionRequest payload that rules look at."""

    __slots__ = ("_bash", "_paths", "command", "cwd", "home", "input", "name", "project",
                 "tool")

    def __init__(self, name, tool, tool_input, cwd, project, home):
        self.name = name
        self.tool = tool
        self.input = tool_input
        self.home = home
        self.cwd = _normalize(cwd, None, home) if cwd else None
        self.project = _normalize(project, None, home) if project else self.cwd
        command = tool_input.get("command") if tool == "Bash" else None
        self.command = command if command.__class__ is str else None
        self._bash = None
        self._paths = None

    def bash(self):
        """The Bash command, parsed (None when the event has none)."""
        if self._bash is None and self.command is not None:
            self._bash = Bash(self.command, self.cwd, self.home)
        return self._bash

    def paths(self):
        """Where the event acts: absolute paths, None for one that cannot be known."""
        if self._paths is None:
            bash = self.bash()
            if bash is not None:
                self._paths = [p for cmd in bash.commands for p in cmd.paths] or [self.cwd]
            else:
                self._paths = _tool_paths(self)
        return self._paths


def read_event(payload, project=None, home=None):
    """The Event in a hook payload, or None when it is not a decidable event (not JSON, not
    an object, another event type)."""
    try:
        obj = parse_json(payload.decode("utf-8"))
    # On malformed JSON the C scanner raises json.decoder.JSONDecodeError when json.decoder
    # is loaded, else (in the hook, where it is not) a SystemError: either means "not JSON".
    except (ValueError, StopIteration, RecursionError, SystemError):
        return None
    return event_of(obj, project, home)


def event_of(obj, project=None, home=None):
    """The Event for a decoded payload, or None."""
    if obj.__class__ is not dict:
        return None
    name = obj.get("hook_event_name")
    if name not in EVENTS:
        return None
    tool = obj.get("tool_name")
    tool_input = obj.get("tool_input")
    cwd = obj.get("cwd")
    return Event(name, tool if tool.__class__ is str else None,
                 tool_input if tool_input.__class__ is dict else {},
                 cwd if cwd.__class__ is str and cwd.startswith("/") else None, project, home)


def _tool_paths(event):
    found = []
    tool_input = event.input
    for key in ("file_path", "path", "notebook_path"):
        value = tool_input.get(key)
        if value.__class__ is str and value:
            found.append(_normalize(value, event.cwd, event.home))
    pattern = tool_input.get("pattern")
    if event.tool == "Glob" and pattern.__class__ is str and pattern[:1] in ("/", "~"):
        # An absolute pattern searches from its folder: the part before any wildcard.
        cut = len(pattern)
        for ch in "*?[{":
            at = pattern.find(ch)
            if 0 <= at < cut:
                cut = at
        found.append(_normalize(pattern[:cut].rpartition("/")[0] or "/", event.cwd,
                                event.home))
    return found or [event.cwd]


# The kernel refuses longer paths (ENAMETOOLONG): a longer one names nothing that can be known,
# and bounding them bounds the work of every word that is made absolute from one.
_PATH_MAX = 4096


def _normalize(path, cwd, home):
    """``path`` made absolute (``~`` is the home folder, relative means under ``cwd``) with
    ``.``, ``..`` and repeated slashes resolved lexically (symbolic links are not
    followed); None when that cannot be known."""
    if path[:1] == "~":
        if home is None or (len(path) > 1 and path[1] != "/"):
            return None  # ~user, or no HOME
        path = home + path[1:]
    elif path[:1] != "/":
        if cwd is None:
            return None
        return _under(cwd, path)
    if len(path) > _PATH_MAX:
        return None
    parts = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def _under(folder, path):
    """The relative ``path`` resolved under ``folder``, an absolute path already normalized:
    only ``path`` is walked, so a word costs its own length, not its folder's (after a
    ``cd`` into a deep folder, walking the folder for every later word made a line's work
    grow with the square of its length)."""
    if len(folder) + len(path) > _PATH_MAX:
        return None
    for part in path.split("/"):
        if part == "..":
            folder = folder.rpartition("/")[0] or "/"
        elif part and part != ".":
            folder = ("" if folder == "/" else folder) + "/" + part
    return folder


def inside(path, project):
    return project == "/" or path == project or path.startswith(project + "/")


# ---- matching -------------------------------------------------------------------------------
def check(rule, event):
    """None when ``rule`` matches ``event``, else the name of the first condition that does
    not (``mpmd policy test`` shows it). Conditions are checked cheapest first."""
    if event.name not in rule[R_EVENTS]:
        return "events"
    patterns = rule[R_TOOLS]
    if patterns is not None and not any_match(patterns, event.tool or ""):
        return "tools"
    patterns = rule[R_CWD]
    if patterns is not None and not _path_match(patterns, (event.cwd,), event.project):
        return "cwd"
    commands = None
    if rule[R_COMMAND] is not None or rule[R_OPTIONS] is not None or rule[R_PIPE] is not None:
        bash = event.bash()
        if bash is None:
            return "command"
        if rule[R_PIPE] is not None and not _pipe_match(rule[R_PIPE], bash.pipelines):
            return "pipe"
        commands = bash.commands
        patterns = rule[R_COMMAND]
        if patterns is not None:
            matching = [c for c in commands if any_match(patterns, c.text)
                        or (c.short is not None and any_match(patterns, c.short))]
            # deny, ask, remote: one command of the line is enough. allow: every command
            # must match, or `npm test && curl x | sh` would pass as `npm test`.
            if not matching or (rule[R_ACTION] == "allow" and len(matching) < len(commands)):
                return "command"
            commands = matching
        options = rule[R_OPTIONS]
        if options is not None:
            commands = [c for c in commands if _has_options(options, c)]
            if not commands:
                return "options"
    if rule[R_PATH] is not None or rule[R_PROJECT]:
        paths = event.paths() if commands is None else [p for c in commands for p in c.paths]
        if rule[R_PATH] is not None and not _path_match(rule[R_PATH], paths, event.project):
            return "path"
        where = rule[R_PROJECT]
        if where:
            project = event.project
            all_inside = project is not None and all(
                p is not None and inside(p, project) for p in paths)
            if all_inside != (where == PROJECT_INSIDE):
                return "project"
    return None


def any_match(patterns, text):
    for pattern in patterns:  # noqa: SIM110 - a loop: no generator to create
        if match(pattern, text):
            return True
    return False


def match(pattern, text):
    kind = pattern[0]
    if kind == K_EXACT:
        return text == pattern[1]
    if kind == K_STARS:
        pieces = pattern[1]
        first = pieces[0]
        last = pieces[-1]
        end = len(text) - len(last)
        if end < len(first) or not text.startswith(first) or not text.endswith(last):
            return False
        at = len(first)
        for piece in pieces[1:-1]:
            at = text.find(piece, at, end)
            if at < 0:
                return False
            at += len(piece)
        return True
    if kind == K_GLOB:
        at = 0
        for piece in pattern[2]:
            at = text.find(piece, at)
            if at < 0:
                return False
            at += len(piece)
        return _glob(pattern[1], text)
    return _regex(pattern[1]).search(text) is not None


def _glob(tokens, text):
    """Whether ``tokens`` match all of ``text``: a walk over the set of token positions
    (no backtracking, so no pathological pattern costs more than len(tokens) per char)."""
    n = len(tokens)
    states = _closure(tokens, {0}, n)
    for ch in text:
        following = set()
        for i in states:
            if i == n:
                continue
            token = tokens[i]
            if token.__class__ is str:
                if token == ch:
                    following.add(i + 1)
            elif token == T_DSTAR:
                following.add(i)
            elif token == T_STAR:
                if ch != "/":
                    following.add(i)
            elif token == T_ANY:
                following.add(i + 1)
            elif token == T_ANY_NAME:
                if ch != "/":
                    following.add(i + 1)
            else:
                negated, chars, ranges = token
                hit = ch in chars or any(low <= ch <= high for low, high in ranges)
                if hit != negated:
                    following.add(i + 1)
        if not following:
            return False
        states = _closure(tokens, following, n)
    return n in states


def _closure(tokens, states, n):
    """``states`` plus the positions reached by letting stars match nothing."""
    for i in list(states):
        while i < n and (tokens[i] == T_STAR or tokens[i] == T_DSTAR):
            i += 1
            states.add(i)
    return states


_regexes: dict = {}


def _regex(source):
    compiled = _regexes.get(source)
    if compiled is None:
        import re  # ~7 ms: only for policies that use re: patterns, when one is reached

        compiled = _regexes[source] = re.compile(source)
    return compiled


def _path_match(patterns, paths, project):
    """Whether a path matches: ``patterns`` is (absolute patterns, patterns relative to
    the project); unknown paths (None) match nothing."""
    absolute, relative = patterns
    for path in paths:
        if path is None:
            continue
        if any_match(absolute, path):
            return True
        if relative and project is not None and path != project and inside(
                path, project) and any_match(
                relative, path[len(project) + 1:] if project != "/" else path[1:]):
            return True
    return False


def _has_options(options, command):
    for shorts, longs in options:
        if not any(ch in command.shorts for ch in shorts) and not any(
                name in command.longs for name in longs):
            return False
    return True


def _pipe_match(sequence, pipelines):
    """Whether a pipeline has commands matching each of ``sequence``, in that order."""
    for pipeline in pipelines:
        want = 0
        for variants in pipeline:
            patterns = sequence[want]
            if any(any_match(patterns, c.text) or (c.short is not None and any_match(
                    patterns, c.short)) for c in variants):
                want += 1
                if want == len(sequence):
                    return True
    return False


# ---- Bash commands --------------------------------------------------------------------------
# Shell words that start a command without being it.
_KEYWORDS = frozenset(("!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while",
                       "until", "case", "esac", "in", "function", "select"))
# Commands that run the rest of their words as a command: (options taking a value,
# positional words before the command, whether its arguments come from elsewhere).
_WRAPPERS = {
    "sudo": ("ugCDhprtUT", 0, False), "doas": ("uC", 0, False), "env": ("uSC", 0, False),
    "nohup": ("", 0, False), "time": ("fo", 0, False), "nice": ("n", 0, False),
    "ionice": ("cnp", 0, False), "command": ("", 0, False), "builtin": ("", 0, False),
    "exec": ("a", 0, False), "timeout": ("sk", 1, False), "stdbuf": ("ioe", 0, False),
    "setsid": ("", 0, False), "chrt": ("", 1, False), "taskset": ("", 1, False),
    "xargs": ("IadEeLlnPs", 0, True), "parallel": ("jS", 0, True),
}
_SHELLS = frozenset(("sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "su"))
_OPERATORS = (";;&", "<<<", "<<-", "&>>", "&&", "||", "|&", ";;", ";&", ">>", "<<", ">&",
              "<&", "&>", ">|", "<>", ";", "&", "|", "(", ")", "<", ">")
_REDIRECTS = frozenset(("<", ">", ">>", "<<", "<<-", "<<<", ">&", "<&", "&>", "&>>", ">|",
                        "<>"))
_NOT_PATHS = frozenset(("/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/tty"))
_MAX_DEPTH = 8  # nested $( ), sh -c, eval


class Command:
    """One simple command: its words (quotes removed), as text, with its program's folder
    removed (``short``, or None), its options, and the paths it names. ``redirects``: its
    redirections as ``text`` shows them, "operator target" (``> out.txt``, ``>& 1``)."""

    __slots__ = ("longs", "paths", "redirects", "short", "shorts", "text", "words")

    def __init__(self, words, redirects, paths):
        self.words = words
        self.redirects = redirects
        text = " ".join(words)
        if redirects:
            text = " ".join([text, *redirects]) if text else " ".join(redirects)
        self.text = text
        program = words[0] if words else ""
        self.short = None
        if "/" in program and program.rstrip("/"):
            self.short = program.rstrip("/").rpartition("/")[2] + text[len(program):]
        shorts = set()
        longs = set()
        for word in words[1:]:
            if word == "--":
                break
            if word[:2] == "--":
                longs.add(word[2:].partition("=")[0])
            elif word[:1] == "-" and len(word) > 1:
                shorts.update(word[1:])
        self.shorts = shorts
        self.longs = longs
        self.paths = paths


class Bash:
    """A Bash command line as rules see it: ``pipelines`` (lists of positions, each a tuple
    of the variants of one command: as written, and unwrapped from sudo, env, xargs, ...),
    and ``commands``, every variant of every command, those of ``$( )``, backquotes,
    ``sh -c`` and ``eval`` included. A ``cd`` moves where later relative paths point."""

    __slots__ = ("commands", "home", "pipelines")

    def __init__(self, text, cwd, home):
        self.home = home
        self.pipelines = []
        self.commands = []
        self._parse(text, [cwd], 0)

    def _parse(self, text, where, depth):
        tokens, nested = _lex(text)
        for source in nested:
            if depth < _MAX_DEPTH:
                self._parse(source, [where[0]], depth + 1)
        pipeline = []
        words = []
        redirects = []
        target = None  # the redirection waiting for its word
        for token in tokens:
            if token.__class__ is tuple:
                if target is not None:
                    redirects.append((target, token))
                    target = None
                else:
                    words.append(token)
            elif token in _REDIRECTS:
                target = token
            else:
                self._command(words, redirects, where, pipeline, depth)
                words = []
                redirects = []
                target = None
                if token not in ("|", "|&") and pipeline:
                    self.pipelines.append(pipeline)
                    pipeline = []
        self._command(words, redirects, where, pipeline, depth)
        if pipeline:
            self.pipelines.append(pipeline)

    def _command(self, words, redirects, where, pipeline, depth):
        k = 0
        while k < len(words) and (words[k][0] in _KEYWORDS or _assignment(words[k][0])):
            k += 1
        words = words[k:]
        if not words and not redirects:
            return
        variants = []
        self._variants(words, redirects, where, variants, depth, False)
        pipeline.append(tuple(variants))
        self.commands.extend(variants)

    def _variants(self, words, redirects, where, variants, depth, unknown_args):
        cwd = where[0]
        home = self.home
        texts = [w[0] for w in words]
        shown = []
        paths = []
        for op, word in redirects:
            shown.append(op + " " + word[0])
            if op in (">&", "<&", "<<", "<<-", "<<<") or word[0] in _NOT_PATHS:
                continue  # a file descriptor, a here-document's end, a string
            paths.append(_word_path(word, cwd, home))
        options_done = False
        for word in words[1:]:
            text = word[0]
            if not options_done and text[:1] == "-" and len(text) > 1:
                if text == "--":
                    options_done = True
                elif "=" in text and "/" in text:  # --output=/some/file
                    paths.append(_word_path((text.partition("=")[2], word[1], True), cwd,
                                            home))
                continue
            paths.append(None if unknown_args or text == "{}" else _word_path(word, cwd, home))
        program = texts[0].rpartition("/")[2] if texts else ""
        if program in ("cd", "pushd"):
            args = [w for w in words[1:] if w[0][:1] != "-" or w[0] == "-"]
            if not args:
                where[0] = _normalize(home, None, None) if home else None
            elif args[0][0] == "-":
                where[0] = None
            else:
                where[0] = _word_path(args[0], cwd, home)
        variants.append(Command(texts, shown, paths or [None if unknown_args else cwd]))
        if depth >= _MAX_DEPTH:
            return
        wrapper = _WRAPPERS.get(program)
        if wrapper is not None:
            rest = _unwrap(words, wrapper, program)
            if rest:
                self._variants(rest, (), where, variants, depth + 1,
                               unknown_args or wrapper[2])
        elif program in _SHELLS or program == "eval":
            script = _script(texts, program)
            if script:
                self._parse(script, [where[0]], depth + 1)
        elif program == "find":
            at = 1
            while at < len(texts):
                if texts[at] in ("-exec", "-execdir", "-ok", "-okdir"):
                    end = at + 1
                    while end < len(texts) and texts[end] not in (";", "+"):
                        end += 1
                    if end > at + 1:
                        self._variants(words[at + 1:end], (), where, variants, depth + 1, True)
                    # On past what it runs: an -exec inside it is that command's own (and
                    # taking it again here made the work grow exponentially with their number).
                    at = end
                at += 1


def _unwrap(words, wrapper, program):
    """The command a wrapper runs: its words after the wrapper's options and operands."""
    with_value, operands, _ = wrapper
    k = 1
    while k < len(words):
        text = words[k][0]
        if text == "--":
            k += 1
            break
        if program == "env" and _assignment(text):
            k += 1
        elif text[:1] == "-" and len(text) > 1:
            k += 2 if len(text) == 2 and text[1] in with_value else 1
        else:
            break
    return words[k + operands:]


def _script(texts, program):
    """The command string of ``sh -c '...'`` or ``eval ...``, or None."""
    if program == "eval":
        return " ".join(texts[1:])
    for k in range(1, len(texts)):
        text = texts[k]
        if text[:1] != "-" or text == "-" or text == "--":
            return None
        if text[:2] != "--" and "c" in text:
            return texts[k + 1] if k + 1 < len(texts) else None
    return None


def _assignment(text):
    name, eq, _ = text.partition("=")
    return bool(eq) and bool(name) and (name[0].isalpha() or name[0] == "_") and all(
        ch.isalnum() or ch == "_" for ch in name) and name.isascii()


def _word_path(word, cwd, home):
    """Where a shell word points, or None when the shell would expand it to something that
    cannot be known here ($VAR, $(...)); $HOME, $PWD and ~ are known."""
    text, dynamic, tilde = word
    if text[:1] == "~" and not tilde:
        text = "./" + text  # a quoted ~ is a folder named ~
    if dynamic:
        for name, value in (("${HOME}", home), ("$HOME", home), ("${PWD}", cwd),
                            ("$PWD", cwd)):
            if text.startswith(name) and text[len(name):len(name) + 1] in ("", "/"):
                rest = text[len(name):]
                if value is None or "$" in rest or "`" in rest:
                    return None
                text = value + rest
                break
        else:
            return None
    if not text:
        return None
    return _normalize(text, cwd, home)


def _lex(s):
    """Shell tokens of ``s``: words as (text with quotes removed, dynamic, tilde) tuples,
    operators as str; and the sources of command substitutions, to be parsed as commands
    too. ``dynamic``: the word holds an expansion ($, backquotes) the shell would do.
    Here-document bodies are skipped. Not a full shell grammar: a guard rail's lexer."""
    tokens = []
    nested = []
    heredocs = []  # (delimiter, strip tabs) waiting for the end of the line
    heredoc_next = None  # the operator whose delimiter is the next word
    word = []
    in_word = False
    dynamic = False
    tilde = False
    i = 0
    n = len(s)
    while i <= n:
        c = s[i] if i < n else "\n"
        if c in " \t\n" or c in ";&|()<>":
            if in_word:
                text = "".join(word)
                if c in "<>" and text.isdigit() and not dynamic and s[i - 1] == text[-1]:
                    pass  # a file descriptor number, as in 2>&1: part of the redirection
                elif heredoc_next is not None:
                    heredocs.append((text, heredoc_next == "<<-"))
                    heredoc_next = None
                    tokens.append((text, False, False))
                else:
                    tokens.append((text, dynamic, tilde))
                word = []
                in_word = dynamic = tilde = False
            if i >= n:
                break
            if c == "\n":
                tokens.append(";")
                i += 1
                if heredocs:
                    i = _skip_heredocs(s, i, heredocs)
                    heredocs = []
            elif c in " \t":
                i += 1
            else:
                for op in _OPERATORS:
                    if s.startswith(op, i):
                        break
                if c in "<>" and s.startswith("(", i + 1):  # process substitution <( )
                    end = _closing(s, i + 2)
                    nested.append(s[i + 2:end])
                    word.append(s[i:end + 1])
                    in_word = dynamic = True
                    i = end + 1
                    continue
                tokens.append(op)
                if op in ("<<", "<<-"):
                    heredoc_next = op
                i += len(op)
        elif c == "#" and not in_word:
            end = s.find("\n", i)
            i = n if end < 0 else end
        elif c == "\\":
            if i + 1 < n and s[i + 1] != "\n":
                word.append(s[i + 1])
                in_word = True
            i += 2
        elif c == "'":
            end = s.find("'", i + 1)
            if end < 0:
                end = n
            word.append(s[i + 1:end])
            in_word = True
            i = end + 1
        elif c == '"':
            i += 1
            in_word = True
            while i < n and s[i] != '"':
                c = s[i]
                if c == "\\" and i + 1 < n and s[i + 1] in '$`"\\\n':
                    if s[i + 1] != "\n":
                        word.append(s[i + 1])
                    i += 2
                    continue
                if c == "$" or c == "`":
                    dynamic = True
                    end = _substitution(s, i, nested)
                    if end > i:
                        word.append(s[i:end])
                        i = end
                        continue
                word.append(c)
                i += 1
            i += 1
        elif c == "$" or c == "`":
            dynamic = in_word = True
            end = _substitution(s, i, nested)
            if end > i:
                word.append(s[i:end])
                i = end
            else:
                word.append(c)
                i += 1
        else:
            if c == "~" and not in_word:
                tilde = True
            word.append(c)
            in_word = True
            i += 1
    return tokens, nested


def _substitution(s, i, nested):
    """The end of a $( ), ${ } or backquoted part starting at ``i`` (its command, if any,
    added to ``nested``), or ``i`` when there is none."""
    if s.startswith("$(", i):
        end = _closing(s, i + 2)
        nested.append(s[i + 2:end])
        return end + 1
    if s.startswith("${", i):
        end = s.find("}", i)
        return len(s) if end < 0 else end + 1
    if s[i] == "`":
        end = i + 1
        while end < len(s) and s[end] != "`":
            end += 2 if s[end] == "\\" else 1
        nested.append(s[i + 1:end])
        return end + 1
    return i


def _closing(s, i):
    """The index of the ) that closes a ( opened before ``i`` (len(s) if none)."""
    depth = 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = s.find("'", i + 1)
            i = n if end < 0 else end + 1
            continue
        if c == '"':
            i += 1
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
            i += 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return n


def _skip_heredocs(s, i, heredocs):
    """Past the bodies of the here-documents opened on the line that ended at ``i``."""
    n = len(s)
    for delimiter, strip_tabs in heredocs:
        while i < n:
            end = s.find("\n", i)
            if end < 0:
                end = n
            line = s[i:end]
            i = end + 1
            if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                break
    return min(i, n)
