"""The policy on mpmd's side: where policy.toml and its compiled form live, compiling it,
its state for ``mpmd status``, the example ``mpmd policy init`` writes, and ``mpmd policy
test`` (docs/policy.md).

The compiler and the matcher are mpm_hook.policy_compile and mpm_hook.policy: the hook must
be able to compile a changed policy.toml by itself, with the standard library only, and
``mpmd policy test`` must decide exactly as the hook does.

Keeping the compiled form in step with policy.toml: ``mpmd policy check`` and ``init``
compile it; ``describe`` (the daemon's status) compiles it when it is missing or older than
the file; and a hook that finds it older than the file compiles it for every hook after it.
"""

from __future__ import annotations

import logging
import marshal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpm_hook import paths, policy_compile
from mpm_hook import policy as hook_policy
from mpm_hook.policy_compile import PolicyError
from mpmd.config import Settings
from mpmd.durable import write_atomic

__all__ = ["PolicyError", "check", "describe", "source_path", "compiled_path"]

log = logging.getLogger("mpmd.ops.policy")

EXAMPLE_PATH = Path(__file__).with_name("policy_example.toml")


def source_path(settings: Settings) -> Path:
    return settings.config_dir / paths.POLICY_NAME


def compiled_path(settings: Settings) -> Path:
    return Path(paths.policy_compiled_path(str(settings.state_dir)))


@dataclass
class Checked:
    """What ``check`` found: state is ``none`` (no policy.toml: observe only), ``active``
    or ``invalid`` (the hooks observe; ``error`` says why)."""

    source: Path
    compiled: Path
    state: str
    rules: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def check(settings: Settings) -> Checked:
    """Validate and compile policy.toml (an invalid file is compiled to a record of why,
    so hooks observe without trying again); with no policy.toml, remove a compiled form
    left behind."""
    source = source_path(settings)
    target = compiled_path(settings)
    if not source.exists():
        target.unlink(missing_ok=True)
        return Checked(source, target, "none")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = policy_compile.refresh(str(source.absolute()), str(target))
    return _checked(source, target, record)


def _checked(source: Path, target: Path, record: tuple[Any, ...]) -> Checked:
    error = record[hook_policy.REC_ERROR]
    if error is not None:
        return Checked(source, target, "invalid", error=error)
    return Checked(source, target, "active", rules=len(record[hook_policy.REC_RULES]),
                   warnings=list(record[hook_policy.REC_WARNINGS]))


def describe(settings: Settings) -> dict[str, Any]:
    """The policy's state for the daemon's status: ``{"file", "state", "rules", "error"}``,
    state ``none``, ``active`` or ``invalid``. Compiles policy.toml when its compiled form
    is missing or older (so a running daemon keeps it in step whenever its status is
    read). Cheap when nothing changed: two stats and one small read. Never raises."""
    source = source_path(settings)
    target = compiled_path(settings)
    try:
        try:
            st = source.stat()
        except FileNotFoundError:
            target.unlink(missing_ok=True)
            return {"file": str(source), "state": "none", "rules": 0, "error": None}
        record = _read_compiled(target)
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if (record is None or record[hook_policy.REC_FORMAT] != hook_policy.FORMAT
                or record[hook_policy.REC_SOURCE] != str(source.absolute())
                or record[hook_policy.REC_SIGNATURE] != signature):
            checked = check(settings)
            if checked.state == "invalid":
                log.warning("policy %s is invalid, the hooks only observe: %s", source,
                            checked.error)
        else:
            checked = _checked(source, target, record)
        return {"file": str(source), "state": checked.state, "rules": checked.rules,
                "error": checked.error}
    except Exception as exc:  # status must answer whatever happens to these files
        log.exception("could not read the policy's state")
        return {"file": str(source), "state": "unknown", "rules": 0, "error": str(exc)}


def _read_compiled(target: Path) -> tuple[Any, ...] | None:
    try:
        record = marshal.loads(target.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(record, tuple) or len(record) < 8 or record[0] != hook_policy.MAGIC:
        return None
    return record


def init(settings: Settings) -> Path:
    """Write the example policy to policy.toml (owner-only) and compile it; never
    overwrites: FileExistsError when there is one."""
    example = EXAMPLE_PATH.read_bytes()  # first: a missing example must leave no empty file
    source = source_path(settings)
    source.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(source, example, replace=False)
    return source


# ---- mpmd policy test -------------------------------------------------------------------
@dataclass
class Verdict:
    """How a policy decides one event: ``decision`` (None: no rule matched), what the hook
    prints (None: nothing), and for each rule of the policy the condition it failed on
    (None for the rule that decided; rules after it are not listed)."""

    event: hook_policy.Event | None
    decision: hook_policy.Decision | None
    printed: bytes | None
    trail: list[tuple[int, str, str, str | None]]


def compile_for_test(settings: Settings, policy_file: Path | None) -> tuple[Any, ...]:
    """The compiled record of ``policy_file`` (default: policy.toml), in memory only.
    PolicyError when it is invalid; FileNotFoundError when there is none."""
    source = policy_file or source_path(settings)
    data = source.read_bytes()
    return policy_compile.compile_text(data, str(source))


def evaluate(record: tuple[Any, ...], payload: object, project: str | None,
             home: str | None) -> Verdict:
    """Decide ``payload`` (a decoded hook payload) as the hook would."""
    event = hook_policy.event_of(payload, project, home)
    if event is None:
        return Verdict(None, None, None, [])
    trail: list[tuple[int, str, str, str | None]] = []
    decision = None
    for rule in record[hook_policy.REC_RULES]:
        failed = hook_policy.check(rule, event)
        trail.append((rule[hook_policy.R_INDEX], rule[hook_policy.R_LABEL],
                      rule[hook_policy.R_ACTION], failed))
        if failed is None:
            decision = hook_policy.Decision(rule, event.name)
            break
    printed = decision.output() if decision is not None else None
    return Verdict(event, decision, printed, trail)


# Tools whose calls a rule can pin down by the file they touch.
_PATH_KEYS = ("file_path", "notebook_path", "path")


def _glob_literal(text: str) -> str:
    """``text`` as a pattern that matches exactly it (docs/policy.md: `\\` escapes)."""
    return "".join("\\" + ch if ch in "*?[]{}\\," else ch for ch in text)


def _toml_string(text: str) -> str:
    return '"' + "".join(
        {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, ch)
        if ch in '\\"\n\t\r' or ord(ch) >= 32 else f"\\u{ord(ch):04x}" for ch in text) + '"'


def allow_rule_for(tool: str | None, tool_input: object, cwd: str | None) -> str | None:
    """The text of an allow rule for exactly this call (the viewer's "always allow"), or
    None when the policy language cannot narrow it down to this call (then it is allowed
    once, and no rule is written)."""
    if not tool or not isinstance(tool_input, dict):
        return None
    lines = ["[[rule]]", f"tools = {_toml_string(_glob_literal(tool))}", 'action = "allow"']
    command = tool_input.get("command")
    if tool == "Bash" and isinstance(command, str) and command.strip():
        # Every command of the line, as the matcher sees them: an allow rule needs them all.
        parsed = hook_policy.Bash(command, cwd or "/", str(Path.home()))
        texts = sorted({c.text for c in parsed.commands})
        if not texts:
            return None
        lines.append("command = [" + ", ".join(_toml_string(_glob_literal(t))
                                               for t in texts) + "]")
    else:
        path = next((tool_input[k] for k in _PATH_KEYS if isinstance(tool_input.get(k), str)),
                    None)
        if not path or not path.startswith("/"):
            return None
        lines.append(f"path = {_toml_string(_glob_literal(path))}")
    return "\n".join(lines) + "\n"


def allow_always(settings: Settings, rule_index: int, tool: str | None, tool_input: object,
                 cwd: str | None, when: str) -> str | None:
    """Write an allow rule for exactly this call just before rule ``rule_index`` (the
    remote rule that asked: first match wins, so it decides from now on, and no deny rule
    before it is passed over) and compile. The rule's name, or None when no rule can be
    written (the call is allowed once). PolicyError if the policy would not compile (the
    file is then left as it was)."""
    body = allow_rule_for(tool, tool_input, cwd)
    source = source_path(settings)
    if body is None or not source.exists():
        return None
    text = source.read_text(encoding="utf-8")
    starts = [i for i, line in enumerate(text.splitlines(keepends=True))
              if line.strip().startswith("[[rule]]")]
    if not 1 <= rule_index <= len(starts):
        return None
    name = f"always-allowed-{when}"
    lines = text.splitlines(keepends=True)
    at = starts[rule_index - 1]
    rule = (f"# Added by \"Always allow\" in the mpmd viewer, {when}.\n"
            + body.replace("[[rule]]\n", f"[[rule]]\nname = {_toml_string(name)}\n", 1)
            + f"reason = {_toml_string('always allowed from the mpmd viewer')}\n\n")
    new = "".join(lines[:at]) + rule + "".join(lines[at:])
    policy_compile.compile_text(new, str(source), (0, 0, 0))  # PolicyError: leave it be
    write_atomic(source, new.encode("utf-8"))  # owner-only, as policy init makes it
    check(settings)
    return name
