"""A scripted stand-in for the Anthropic Messages API on loopback, for the real Claude Code CLI.

Claude Code, pointed at it by ``ANTHROPIC_BASE_URL``, runs whole sessions with no network:
each ``POST /v1/messages`` is answered from a script of turns, streamed as Server-Sent Events
when the request asks for a stream (``message_start``, ``content_block_start``,
``content_block_delta`` with ``text_delta`` / ``input_json_delta``, ``content_block_stop``,
``message_delta`` with the ``stop_reason``, ``message_stop``) and as one JSON message when it
does not. Every answer carries usage figures.

Which turn to answer is read off the conversation the request carries, never off how many
requests came before, so retries and Claude Code's side requests (session titles, token
counts, summaries, requests without tools) never derail a script:

* a conversation is the script's main one, or a subagent's when its first user message holds
  one of the ``agents`` keys (the subagent's prompt says which);
* its position is the number of assistant messages it already holds (a retry carries the
  same conversation, so it gets the same answer);
* a request without tools is a side request: it gets a short text;
* a request that asks for a summary and no tool calls (``/compact``: Claude Code sends it with
  the conversation's tools) gets a summary in the ``<summary>`` tags Claude Code looks for.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "claude-sonnet-4-5"


@dataclass(frozen=True)
class Turn:
    """One answer of the model: content blocks, ending the turn or calling tools."""

    blocks: tuple[dict[str, Any], ...]

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(b["type"] == "tool_use" for b in self.blocks) else "end_turn"


def tool(name: str, **tool_input: Any) -> dict[str, Any]:
    """A tool call block (its id is made when the turn is sent)."""
    return {"type": "tool_use", "name": name, "input": tool_input}


def call(name: str, **tool_input: Any) -> Turn:
    """A turn that calls one tool."""
    return Turn((tool(name, **tool_input),))


def calls(*blocks: dict[str, Any]) -> Turn:
    """A turn that calls several tools at once (one PostToolBatch for them all)."""
    return Turn(tuple(blocks))


def say(text: str) -> Turn:
    """A turn that answers in text and ends."""
    return Turn(({"type": "text", "text": text},))


@dataclass
class Script:
    """The turns of the main conversation, and of subagents keyed by a text their prompt
    holds. Past its last turn a conversation gets ``done``."""

    turns: Sequence[Turn]
    agents: dict[str, Sequence[Turn]] = field(default_factory=dict)
    done: str = "Done."


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content
                         if isinstance(b, dict) and b.get("type") == "text")
    return ""


# What the last user message of a compaction request says (Claude Code 2.1.328).
_COMPACTION_ASKS = ("Do NOT call any tools", "<summary>")
COMPACT_SUMMARY = "Scripted summary of the conversation."


def choose(script: Script, request: dict[str, Any]) -> Turn:
    """The turn that answers ``request`` (pure: the same conversation, the same turn)."""
    messages = request.get("messages") or []
    if not request.get("tools"):
        return say("Scripted side answer.")
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") == "user" and all(
            ask in _text_of(last.get("content")) for ask in _COMPACTION_ASKS):
        return say(f"<analysis>Scripted.</analysis>\n<summary>{COMPACT_SUMMARY}</summary>")
    first_user = next((_text_of(m.get("content")) for m in messages
                       if isinstance(m, dict) and m.get("role") == "user"), "")
    turns = script.turns
    for key, agent_turns in script.agents.items():
        if key in first_user:
            turns = agent_turns
            break
    position = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    return turns[position] if position < len(turns) else say(script.done)


def _usage(request: dict[str, Any]) -> dict[str, int]:
    size = len(json.dumps(request.get("messages") or []))
    return {"input_tokens": max(1, size // 4), "output_tokens": 12,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def _blocks_with_ids(turn: Turn) -> list[dict[str, Any]]:
    return [dict(b, id=f"toolu_{uuid.uuid4().hex[:24]}") if b["type"] == "tool_use" else dict(b)
            for b in turn.blocks]


def message(turn: Turn, request: dict[str, Any]) -> dict[str, Any]:
    """The whole answer, for a request that does not stream."""
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": request.get("model") or MODEL, "content": _blocks_with_ids(turn),
            "stop_reason": turn.stop_reason, "stop_sequence": None, "usage": _usage(request)}


def sse_events(whole: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The answer (``message``'s) as the stream of (event, data) the Messages API sends."""
    usage = whole["usage"]
    start = dict(whole, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    events: list[tuple[str, dict[str, Any]]] = [("message_start",
                                                {"type": "message_start", "message": start})]
    for index, block in enumerate(whole["content"]):
        if block["type"] == "tool_use":
            opened = dict(block, input={})
            text = json.dumps(block["input"])
            # In two pieces, as the real API splits partial JSON anywhere.
            deltas = [{"type": "input_json_delta", "partial_json": part}
                      for part in (text[: len(text) // 2], text[len(text) // 2:]) if part]
        else:
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block["text"]}]
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": opened}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                            "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": whole["stop_reason"],
                                               "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class ScriptedAPI:
    """The stand-in server, on a loopback port of its own, in a thread.

    ``script`` may be replaced between sessions. ``requests`` keeps every request body
    (parsed) in arrival order, for tests that look at what Claude Code sent.
    """

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script(turns=())
        self.requests: list[dict[str, Any]] = []
        # Every /v1/messages request and the whole message answered to it (its id, usage).
        self.answered: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._json(200, {"data": [], "has_more": False})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._json(400, {"type": "error", "error": {
                        "type": "invalid_request_error", "message": "body is not JSON"}})
                    return
                path = self.path.split("?", 1)[0]
                with api._lock:
                    api.requests.append({"path": path, **request})
                if path.endswith("/count_tokens"):
                    self._json(200, {"input_tokens": _usage(request)["input_tokens"]})
                    return
                if not path.endswith("/v1/messages"):
                    self._json(404, {"type": "error", "error": {
                        "type": "not_found_error", "message": f"no {path} here"}})
                    return
                whole = message(choose(api.script, request), request)
                with api._lock:
                    api.answered.append((request, whole))
                if not request.get("stream"):
                    self._json(200, whole)
                    return
                body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n"
                               for name, data in sse_events(whole)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> ScriptedAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def main_requests(self) -> list[dict[str, Any]]:
        """The requests that carried tools (the conversations the script answers)."""
        with self._lock:
            return [r for r in self.requests if r.get("tools")]
