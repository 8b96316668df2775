"""Conformance: a headless session of the real Claude Code CLI, journaled by mpmd.

End to end: `mpmd install-hooks` in a Sandbox, a real daemon, the pinned Claude Code CLI
(`claude -p` with `--allowedTools`) against the scripted Messages API, Claude Code's own hook
processes, and a WebSocket viewer watching the sessions table; once for each transport
`install-hooks` offers (command hooks into the socket, http hooks into the endpoint). Two
sessions each: the main one calls Bash, Read, Edit, Write, Grep, Glob, TaskCreate and TaskUpdate, a
Bash that fails, a Bash carrying secrets and two tools in one turn; the second calls TodoWrite.

What the real client (2.1.328) does, which these tests hold mpmd to:

- `--include-hook-events` reports each hook it starts (`hook_started`: `hook_event`,
  `hook_name` "PreToolUse:Bash", "SessionStart:startup", "PostToolBatch"...) and its end
  (`hook_response`: `outcome`, `stdout`, `exit_code`). SessionEnd runs after the stream is
  closed, so it has no record there.
- Headless, Glob and Grep are tools only when `--allowedTools` names them (otherwise the
  `init` tools list has neither). TodoWrite is off by default ("TodoWrite is disabled for
  this session"): its successors are TaskCreate / TaskUpdate / TaskGet / TaskList (deferred
  tools, called by name), and TaskCreate fires TaskCreated, a TaskUpdate to `completed` fires
  TaskCompleted. `CLAUDE_CODE_ENABLE_TASKS=false` brings TodoWrite back. (Observed, not
  tested here: a call to a tool the session lacks fires no PreToolUse/PostToolUse, only the
  turn's PostToolBatch, whose tool_response is the "No such tool available" error.)
- A failing Bash fires PostToolUseFailure with `error` "Exit code N\\n<stderr>".
- Parallel tool calls in one turn get one PostToolBatch listing them in the model's order.
- SessionStart of a headless session carries `source` only: no `model` (even with `--model`)
  and no `permission_mode`; no hook payload of the session names the model.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.claude.api import Script, ScriptedAPI, Turn, calls, say, tool
from tests.claude.client import Headless, Sandbox, require_claude
from tests.claude.viewer import SessionsFeed
from tests.utils import Daemon, iter_files, journal_events, status, wait_until

# Made-up secrets of the formats mpmd.model.redact knows (GitHub token, AWS access key id).
GITHUB_TOKEN = "ghp_R8xq2LmT5vW9zN3pK7yB1cD4fG6hJ0aS2eQ"
AWS_KEY_ID = "AKIAQ7W3EXAMPLEKEY12"
SECRET_COMMAND = (f"export AWS_ACCESS_KEY_ID={AWS_KEY_ID} GITHUB_TOKEN={GITHUB_TOKEN} && "
                  "env | grep -E '^(AWS_ACCESS_KEY_ID|GITHUB_TOKEN)=' | sort")

TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure",
                         "PermissionRequest", "PermissionDenied"})
MAIN_TOOLS = ["Bash", "Read", "Edit", "Write", "Grep", "Glob", "TaskCreate", "TaskUpdate"]


@dataclass(frozen=True)
class Expect:
    """One tool call of the script and what mpmd must make of it."""

    tool: str
    input: dict[str, Any]
    operation: str
    risk: str
    present: str  # PreToolUse summary
    past: str  # PostToolUse summary, or PostToolUseFailure's
    path: str | None = None  # file_path, relative to the project
    length: int | None = None  # content_length
    fails: bool = False

    def block(self) -> dict[str, Any]:
        return tool(self.tool, **self.input)


def expectations(project: str) -> list[list[Expect]]:
    """The main session's turns, each a list of the calls the model makes at once."""
    def at(rel: str) -> str:
        return f"{project}/{rel}"

    usage = "# Usage\n\n    python -m app --verbose\n"
    env = "DEBUG=1\nPORT=8080\n"
    return [
        [Expect("Bash", {"command": "ls -1 src && wc -l src/app.py",
                         "description": "List the sources"},
                "execute", "low", "Running: ls -1 src && wc -l src/app.py",
                "Executed: ls -1 src && wc -l src/app.py")],
        [Expect("Read", {"file_path": at("src/app.py")}, "read", "low",
                "Reading src/app.py", "Read src/app.py", path="src/app.py")],
        [Expect("Edit", {"file_path": at("src/app.py"), "old_string": "return 'hello'",
                         "new_string": "return 'hello, world'"}, "write", "low",
                "Editing src/app.py", "Modified src/app.py", path="src/app.py",
                length=len("return 'hello, world'"))],
        [Expect("Write", {"file_path": at("docs/usage.md"), "content": usage}, "write", "low",
                "Writing docs/usage.md", "Created docs/usage.md", path="docs/usage.md",
                length=len(usage))],
        [Expect("Write", {"file_path": at(".env"), "content": env}, "write", "high",
                "Writing .env", "Created .env", path=".env", length=len(env))],
        [Expect("Grep", {"pattern": r"def \w+", "path": at("src"), "glob": "*.py",
                         "output_mode": "content"}, "read", "low",
                r"Searching for 'def \w+' in src", r"Searched for 'def \w+' in src",
                path="src")],
        [Expect("Glob", {"pattern": "**/*.md", "path": at("docs")}, "read", "low",
                "Finding **/*.md in docs", "Found **/*.md in docs", path="docs")],
        [Expect("TaskCreate", {"subject": "Document the CLI",
                               "description": "Write docs/usage.md with an example",
                               "activeForm": "Documenting the CLI"}, "metadata", "low",
                "Creating task: Document the CLI", "Created task: Document the CLI")],
        [Expect("TaskUpdate", {"taskId": "1", "status": "completed"}, "metadata", "low",
                "Updating task #1: completed", "Updated task #1: completed")],
        [Expect("Bash", {"command": "rm -rf build", "description": "Remove build output"},
                "execute", "medium", "Running: rm -rf build", "Executed: rm -rf build")],
        [Expect("Bash", {"command": SECRET_COMMAND, "description": "Check the credentials"},
                "execute", "low", "", "")],  # summaries: see test_secrets_are_redacted
        [Expect("Bash", {"command": "cat dist/app.tar.gz", "description": "Show the archive"},
                "execute", "low", "Running: cat dist/app.tar.gz",
                "Failed: Bash cat dist/app.tar.gz — Exit code 1", fails=True)],
        [Expect("Bash", {"command": "du -s src", "description": "Size of the sources"},
                "execute", "low", "Running: du -s src", "Executed: du -s src"),
         Expect("Read", {"file_path": at("README.md")}, "read", "low",
                "Reading README.md", "Read README.md", path="README.md")],
    ]


TODOS = [
    {"content": "Run the tests", "status": "completed", "activeForm": "Running the tests"},
    {"content": "Fix the failing test", "status": "in_progress",
     "activeForm": "Fixing the failing test"},
    {"content": "Update the changelog", "status": "pending",
     "activeForm": "Updating the changelog"},
]
TODO_CALL = Expect("TodoWrite", {"todos": TODOS}, "metadata", "low", "Updating todos (3)",
                   "Updated todos (3)")


@dataclass
class Observed:
    transport: str  # how the hooks reach the daemon: command (the socket) or http
    sandbox: Sandbox
    turns: list[list[Expect]]
    main: Headless
    todo: Headless
    journal: list[dict[str, Any]]  # hooks' events and those read off the transcripts
    stored: bytes  # every file under MPMD_HOME, as bytes
    viewer_events: list[dict[str, Any]]
    rows: list[dict[str, Any]]  # every session row the viewer was sent, in order

    @property
    def hooked(self) -> list[dict[str, Any]]:
        """What the hooks delivered: the journal less what was read off the transcripts."""
        return [e for e in self.journal if e["source"] != "transcript"]

    def events_of(self, out: Headless) -> list[dict[str, Any]]:
        return [e for e in self.hooked if e["session_id"] == out.session_id]

    def final_row(self, out: Headless) -> dict[str, Any]:
        return [r for r in self.rows if r["session_id"] == out.session_id][-1]


def script_of(turns: list[list[Expect]]) -> Script:
    plan: list[Turn] = [calls(*(e.block() for e in turn)) for turn in turns]
    return Script(turns=[*plan, say("The CLI is documented; the archive is not built yet.")])


@pytest.fixture(scope="module", params=["command", "http"])
def observed(request: pytest.FixtureRequest) -> Iterator[Observed]:
    """The sessions, once for each transport install-hooks offers."""
    require_claude()
    sb = Sandbox()
    try:
        sb.mpmd_home.mkdir(mode=0o700)
        project = sb.project
        (project / "src").mkdir()
        (project / "src" / "app.py").write_text("def main():\n    return 'hello'\n")
        (project / "README.md").write_text("# App\n\nA small command line tool.\n")
        (project / "build").mkdir()
        (project / "build" / "app.o").write_bytes(b"\x7fELF")
        turns = expectations(str(project))
        with Daemon(sb.mpmd_home, HOME=str(sb.home)), ScriptedAPI(script_of(turns)) as api, \
                SessionsFeed(status(sb.mpmd_home)["ws_url"]) as feed:
            sb.install_hooks(request.param, MPMD_HTTP_PORT="0")  # the daemon's settings
            def ended(out: Headless) -> bool:
                row = feed.row(out.session_id)
                return bool(row and row["ended_at"]) and any(
                    e["event_type"] == "SessionEnd" and e["session_id"] == out.session_id
                    for e in journal_events(sb.mpmd_home))

            main = sb.headless(api.url, "Document the CLI and check the build.",
                               allowed_tools=MAIN_TOOLS)
            assert main.returncode == 0, main.stderr
            wait_until(lambda: ended(main), "the main session ended in the journal and viewer")
            api.script = Script(turns=[calls(TODO_CALL.block()), say("Todos updated.")])
            todo = sb.headless(api.url, "Plan the fix.", allowed_tools=["TodoWrite"],
                               CLAUDE_CODE_ENABLE_TASKS="false")
            assert todo.returncode == 0, todo.stderr
            wait_until(lambda: ended(todo), "the TodoWrite session ended in the journal and viewer")
            wait_until(lambda: len(feed.events) == len(journal_events(sb.mpmd_home)),
                       "the viewer had every journaled event")
            viewer_events, rows = list(feed.events), list(feed.history)
        stored = b"".join(path.read_bytes() for path in iter_files(sb.mpmd_home))
        yield Observed(request.param, sb, turns, main, todo, journal_events(sb.mpmd_home), stored,
                       viewer_events, rows)
    finally:
        sb.cleanup()


def hook_key(record: dict[str, Any]) -> tuple[str, str | None]:
    event = record["hook_event"]
    _, _, matched = record["hook_name"].partition(":")
    return event, (matched if event in TOOL_EVENTS else None)


def tool_uses(out: Headless) -> list[tuple[str, dict[str, Any]]]:
    """(assistant message id, tool_use block) of every tool call the CLI made, in order."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for m in out.messages:
        if m.get("type") == "assistant":
            for block in m["message"]["content"]:
                if block.get("type") == "tool_use":
                    seen.setdefault(block["id"], (m["message"]["id"], block))
    return list(seen.values())


def use_id(out: Headless, expect: Expect) -> str:
    """The id of the call; Claude Code may add the defaults (Edit's replace_all: false)."""
    (found,) = [b["id"] for _, b in tool_uses(out)
                if b["name"] == expect.tool and expect.input.items() <= b["input"].items()]
    return found


def test_every_hook_claude_code_started_is_journaled_once_and_nothing_else(
        observed: Observed) -> None:
    everything = []
    for out in (observed.main, observed.todo):
        assert out.hooks_started and {h["session_id"] for h in out.hooks_started} == {
            out.session_id}
        assert "SessionEnd" not in {h["hook_event"] for h in out.hooks_started}
        journaled = observed.events_of(out)
        everything += journaled
        want = Counter(hook_key(h) for h in out.hooks_started) + Counter({("SessionEnd", None): 1})
        assert Counter((e["event_type"], e.get("tool_name")) for e in journaled) == want
        # SessionStart runs command hooks only: over http it still comes by the socket.
        assert all(e["status"] == "ok" and e["source"] == (
            "hook" if observed.transport == "command" or e["event_type"] == "SessionStart"
            else "http") for e in journaled)
        start = next(e for e in journaled if e["event_type"] == "SessionStart")
        started = next(h for h in out.hooks_started if h["hook_event"] == "SessionStart")
        assert started["hook_name"] == f"SessionStart:{start['payload']['source']}"
    assert len(everything) == len(observed.hooked)  # no event of any other session
    assert [e["seq"] for e in observed.journal] == list(range(1, len(observed.journal) + 1))


def test_mpmds_hook_exits_0_and_prints_nothing(observed: Observed) -> None:
    for out in (observed.main, observed.todo):
        responses = out.hook_responses
        assert {r["hook_id"] for r in responses} == {h["hook_id"] for h in out.hooks_started}
        assert len(responses) == len(out.hooks_started)
        for r in responses:
            # An http hook's exit_code is the answer's status; SessionStart is a command.
            code = 200 if observed.transport == "http" and r["hook_event"] != "SessionStart" \
                else 0
            assert (r["outcome"], r["stdout"], r["exit_code"]) == ("success", "", code), r


def test_the_real_tool_names_of_a_headless_session(observed: Observed) -> None:
    """What this scenario relies on: Glob and Grep exist once allowed, TodoWrite only with
    the task tools off, TaskCreate/TaskUpdate in its place."""
    def tools(out: Headless) -> list[str]:
        return next(m for m in out.messages if m.get("subtype") == "init")["tools"]

    assert {"Bash", "Read", "Edit", "Write", "Glob", "Grep", "TaskCreate",
            "TaskUpdate"} <= set(tools(observed.main))
    assert "TodoWrite" not in tools(observed.main)
    assert "TodoWrite" in tools(observed.todo)
    assert not any(r.get("is_error") for out in (observed.main, observed.todo)
                   for r in out.tool_results()
                   if not str(r.get("content")).startswith("Exit code 1"))
    # The calls ran: the edit, the new files, the removed build folder.
    project = observed.sandbox.project
    assert (project / "src" / "app.py").read_text() == "def main():\n    return 'hello, world'\n"
    assert (project / "docs" / "usage.md").is_file() and (project / ".env").is_file()
    assert not (project / "build").exists()


def test_each_tool_event_has_its_summary_operation_risk_and_path(observed: Observed) -> None:
    project = str(observed.sandbox.project)
    checks = [(observed.main, e) for turn in observed.turns for e in turn]
    checks.append((observed.todo, TODO_CALL))
    for out, expect in checks:
        uid = use_id(out, expect)
        pre, post = [e for e in observed.events_of(out) if e.get("tool_use_id") == uid]
        assert pre["event_type"] == "PreToolUse"
        assert post["event_type"] == ("PostToolUseFailure" if expect.fails else "PostToolUse")
        for event, summary in ((pre, expect.present), (post, expect.past)):
            what = f"{event['event_type']} {expect.tool} {expect.input}"
            assert event["tool_name"] == expect.tool, what
            assert (event["operation"], event["risk"]) == (expect.operation, expect.risk), what
            assert (event.get("risk_reason") is None) == (expect.risk == "low"), what
            if summary:  # the secret call's: test_secrets_are_redacted_in_the_journal
                assert event["summary"] == summary, what
            path = f"{project}/{expect.path}" if expect.path else None
            if expect.tool in ("Read", "Edit", "Write"):
                assert event.get("file_path") == path, what
            assert event.get("content_length") == expect.length, what


def test_a_failing_bash_is_a_failure_with_its_exit_code(observed: Observed) -> None:
    (failure,) = [e for e in observed.events_of(observed.main)
                  if e["event_type"] == "PostToolUseFailure"]
    payload = failure["payload"]
    assert payload["tool_input"]["command"] == "cat dist/app.tar.gz"
    assert payload["error"].startswith("Exit code 1\n") and payload["is_interrupt"] is False
    assert failure["summary"] == "Failed: Bash cat dist/app.tar.gz — Exit code 1"
    # What Claude Code told the model is the same failure.
    assert any(r.get("is_error") and str(r.get("content")).startswith("Exit code 1")
               for r in observed.main.tool_results())


def test_the_tasks_fire_their_own_events(observed: Observed) -> None:
    journaled = observed.events_of(observed.main)
    kinds = [e["event_type"] for e in journaled]
    created = journaled[kinds.index("TaskCreated")]
    completed = journaled[kinds.index("TaskCompleted")]
    assert created["summary"] == "Task created: Document the CLI"
    assert completed["summary"] == "Task completed: Document the CLI"
    assert (created["operation"], created["risk"]) == ("metadata", "low")
    # Each fires between its tool call's PreToolUse and PostToolUse.
    for event, tool_name in ((created, "TaskCreate"), (completed, "TaskUpdate")):
        i = journaled.index(event)
        assert (journaled[i - 1]["event_type"], journaled[i - 1]["tool_name"]) == (
            "PreToolUse", tool_name)
        assert (journaled[i + 1]["event_type"], journaled[i + 1]["tool_name"]) == (
            "PostToolUse", tool_name)


def test_each_turn_gets_one_batch_listing_its_calls(observed: Observed) -> None:
    for out in (observed.main, observed.todo):
        journaled = observed.events_of(out)
        batches = [e for e in journaled if e["event_type"] == "PostToolBatch"]
        turns: dict[str, list[str]] = {}
        for message_id, block in tool_uses(out):
            turns.setdefault(message_id, []).append(block["id"])
        assert [[c["tool_use_id"] for c in b["payload"]["tool_calls"]] for b in batches] == \
            list(turns.values())
        seq = {(e["event_type"], e.get("tool_use_id")): e["seq"] for e in journaled}
        for batch in batches:
            for c in batch["payload"]["tool_calls"]:
                ended = seq.get(("PostToolUse", c["tool_use_id"])) or \
                    seq[("PostToolUseFailure", c["tool_use_id"])]
                assert seq[("PreToolUse", c["tool_use_id"])] < ended < batch["seq"]
    # The two calls of one turn: one batch naming both, in the model's order.
    bash, read = observed.turns[-1]
    ids = [use_id(observed.main, bash), use_id(observed.main, read)]
    (batch,) = [e for e in observed.events_of(observed.main) if e["event_type"] ==
                "PostToolBatch" and len(e["payload"]["tool_calls"]) > 1]
    assert [c["tool_use_id"] for c in batch["payload"]["tool_calls"]] == ids
    assert batch["summary"] == "Batch of 2 tool calls: Bash, Read"
    assert (batch["operation"], batch["risk"]) == ("metadata", "low")
    # A batch carries the riskiest of its calls.
    risks = {b["summary"]: b["risk"] for b in observed.events_of(observed.main)
             if b["event_type"] == "PostToolBatch"}
    assert risks["Batch of 1 tool call: Write"] == "high"  # .env (docs/usage.md is low)


def test_secrets_are_redacted_in_the_journal(observed: Observed) -> None:
    # The secrets went through Claude Code: its Bash printed them back to the model.
    assert any(GITHUB_TOKEN in str(r.get("content")) and AWS_KEY_ID in str(r.get("content"))
               for r in observed.main.tool_results())
    (secret_call,) = [e for turn in observed.turns for e in turn
                      if e.input.get("command") == SECRET_COMMAND]
    uid = use_id(observed.main, secret_call)
    events = [e for e in observed.events_of(observed.main)
              if e.get("tool_use_id") == uid or any(
                  c["tool_use_id"] == uid for c in e["payload"].get("tool_calls") or ())]
    assert [e["event_type"] for e in events] == ["PreToolUse", "PostToolUse", "PostToolBatch"]
    for event in events:
        text = json.dumps(event)
        assert GITHUB_TOKEN not in text and AWS_KEY_ID not in text
        assert "[REDACTED:aws_key_id]" in json.dumps(event["payload"])
    pre, post, _ = events
    assert pre["summary"].startswith("Running: export AWS_ACCESS_KEY_ID=[REDACTED:aws_key_id] ")
    assert post["summary"].startswith("Executed: export AWS_ACCESS_KEY_ID=[REDACTED:aws_key_id] ")
    assert "GITHUB_TOKEN=[REDACTED" in pre["summary"]
    # The output the command printed is redacted too, where the payload carries it.
    stdout = post["payload"]["tool_response"]["stdout"]
    assert "AWS_ACCESS_KEY_ID=[REDACTED" in stdout and "GITHUB_TOKEN=[REDACTED" in stdout
    # Nowhere on disk: journal, index, spool, logs.
    assert GITHUB_TOKEN.encode() not in observed.stored
    assert AWS_KEY_ID.encode() not in observed.stored


def test_the_viewer_gets_the_journal_and_the_sessions_table(observed: Observed) -> None:
    assert [e for e in observed.viewer_events if e["source"] != "transcript"] == observed.hooked
    for out, tools, failures in ((observed.main, sum(map(len, observed.turns)), 1),
                                 (observed.todo, 1, 0)):
        journaled = observed.events_of(out)
        start = next(e for e in journaled if e["event_type"] == "SessionStart")
        row = observed.final_row(out)
        assert row["tool_count"] == tools and row["failure_count"] == failures
        assert row["cwd"] == str(observed.sandbox.project) and row["project"] == "project"
        # Claude Code 2.1.328 names no model in any hook of a headless session (its init
        # message does: the model the API was asked for); the row shows what the hooks said.
        init = next(m for m in out.messages if m.get("subtype") == "init")
        assert init["model"] and "model" not in start["payload"]
        assert row["model"] == start["payload"].get("model")
        # Its permission mode comes from the prompt's payload instead.
        prompt = next(e for e in journaled if e["event_type"] == "UserPromptSubmit")
        assert row["permission_mode"] == prompt["payload"]["permission_mode"]
        assert row["ended_at"] == journaled[-1]["timestamp"] and row["end_reason"] == "other"
        assert journaled[-1]["event_type"] == "SessionEnd"
        assert row["event_count"] == len(journaled) and row["last_seq"] == journaled[-1]["seq"]
        assert row["pending"] == [] and not row.get("running")
        # Every row the viewer was sent agrees with the journal up to that row's last event.
        rows = [r for r in observed.rows if r["session_id"] == out.session_id]
        for r in rows:
            upto = [e for e in journaled if e["seq"] <= r["last_seq"]]
            assert r["event_count"] == len(upto)
            assert r["tool_count"] == sum(e["event_type"] in ("PostToolUse", "PostToolUseFailure")
                                          for e in upto)
            assert r["failure_count"] == sum(e["event_type"] == "PostToolUseFailure" for e in upto)
            assert (r["ended_at"] is None) == (upto[-1]["event_type"] != "SessionEnd")
    # The viewer saw the main session live, its failure counted, before it ended.
    assert any(r["failure_count"] == 1 and r["ended_at"] is None for r in observed.rows
               if r["session_id"] == observed.main.session_id)
