"""mpmd.transcripts.prompt_watch: a "no" to a permission prompt, read off a transcript,
within bounds.
(The real client's side is in tests/test_claude_permission_prompt.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mpmd.model.sessions import EventView, Sessions
from mpmd.transcripts import prompt_watch
from mpmd.transcripts.prompt_watch import PromptWatch, Wait, refusal

ID = "toolu_0123456789abcdef"
NO = ("The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if "
      "it was a file edit, the new_string was NOT written to the file).")


def line(obj: dict) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def tool_use(tid: str = ID) -> bytes:
    return line({"type": "assistant", "message": {"role": "assistant", "content": [
        {"type": "tool_use", "name": "Bash", "id": tid, "input": {"command": "rm x"}}]}})


def result(tid: str = ID, is_error: bool = True, content: object = NO) -> bytes:
    return line({"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tid, "is_error": is_error, "content": content}]}})


def test_a_refused_result_is_found_and_nothing_else_is() -> None:
    assert refusal(tool_use() + result(), ID) == NO
    assert refusal(tool_use(), ID) is None  # asked, not answered
    assert refusal(tool_use() + result(is_error=False, content="ok"), ID) is None  # it ran
    assert refusal(result("toolu_other"), ID) is None
    blocks = [{"type": "text", "text": "no: "}, {"type": "text", "text": "wrong file"}]
    assert refusal(result(content=blocks), ID) == "no:  wrong file"
    assert refusal(b'{"type": "user", "message": {"content": "' + ID.encode() + b'"}}\n',
                   ID) is None


@given(st.binary(max_size=300))
def test_any_bytes_are_read_without_error(junk: bytes) -> None:
    refusal(junk + ID.encode() + junk, ID)
    refusal(b'{"type":"user","message":{"content":[' + junk + ID.encode() + b"]}}", ID)


def wait(path: Path, tid: str = ID) -> Wait:
    return Wait("s1", str(path), "Bash", tid, 7)


def test_the_watch_reads_what_the_transcript_gains(tmp_path: Path) -> None:
    path = tmp_path / "s1.jsonl"
    path.write_bytes(tool_use())
    watch = PromptWatch()
    assert watch.scan([wait(path)]) == []
    with path.open("ab") as f:
        f.write(result()[:20])  # half a line: not read yet
    assert watch.scan([wait(path)]) == []
    with path.open("ab") as f:
        f.write(result()[20:])
    (answer,) = watch.scan([wait(path)])
    assert (answer.session_id, answer.tool_use_id, answer.answer_to) == ("s1", ID, 7)
    assert answer.message == NO
    assert watch.scan([wait(path)]) == []  # said once


def test_an_old_transcript_is_read_from_its_tail(tmp_path: Path) -> None:
    path = tmp_path / "s1.jsonl"
    old = result("toolu_old") * (prompt_watch.TAIL_BYTES // len(result("toolu_old")) + 50)
    path.write_bytes(result() + old)  # our id's refusal lies before the tail: not looked at
    assert PromptWatch().scan([wait(path)]) == []
    path.write_bytes(old + tool_use() + result())
    assert len(PromptWatch().scan([wait(path)])) == 1


def test_a_line_longer_than_a_pass_is_passed_over(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(prompt_watch, "READ_BYTES", 4096)
    path = tmp_path / "s1.jsonl"
    path.write_bytes(b"")
    watch = PromptWatch()
    watch.scan([wait(path)])
    with path.open("ab") as f:
        f.write(b'{"x": "' + b"a" * 10_000 + b'"}\n' + result())
    answers = []
    for _ in range(5):
        answers += watch.scan([wait(path)])
    assert len(answers) == 1


def test_only_regular_jsonl_files_of_ours_are_read(tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_bytes(tool_use() + result())
    link = tmp_path / "link.jsonl"
    os.symlink(target, link)
    other = tmp_path / "notes.txt"
    other.write_bytes(tool_use() + result())
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    for path in (link, other, fifo, tmp_path / "missing.jsonl", Path("relative.jsonl")):
        assert PromptWatch().scan([wait(path)]) == [], path
    assert len(PromptWatch().scan([wait(target)])) == 1


def test_waits_come_from_rows_waiting_on_a_known_call() -> None:
    table = Sessions()
    base = {"session_id": "s1", "transcript_path": "/t/s1.jsonl", "cwd": "/p"}

    def fold(seq: int, kind: str, **fields: object) -> None:
        payload = {**base, "hook_event_name": kind, **fields}
        table.apply(EventView(seq=seq, event_type=kind, session_id="s1",
                              timestamp=f"2026-01-01T00:00:0{seq}Z",
                              tool_name=fields.get("tool_name"),  # type: ignore[arg-type]
                              tool_use_id=fields.get("tool_use_id"),  # type: ignore[arg-type]
                              payload=json.dumps(payload).encode()))

    watch = PromptWatch()
    fold(1, "PreToolUse", tool_name="Bash", tool_use_id=ID)
    assert watch.waits(table.all()) == []  # running, not waiting
    fold(2, "PermissionRequest", tool_name="Bash", tool_input={"command": "rm x"})
    assert watch.waits(table.all()) == [Wait("s1", "/t/s1.jsonl", "Bash", ID, 2)]
    fold(3, "PermissionAnswered", tool_name="Bash", tool_use_id=ID)
    assert watch.waits(table.all()) == []
