"""A tiny MCP server over stdio for tests: one tool, ``ask``, that asks the person a question
through an MCP elicitation (``elicitation/create``, form mode) before it answers.

Claude Code starts it from an ``--mcp-config`` (or ``.mcp.json``) entry such as
``{"mcpServers": {"elicit": {"command": "python3", "args": ["mcp_elicit.py"]}}}``; the model
calls ``mcp__elicit__ask``, Claude Code fires its ``Elicitation`` hook and shows the form, and
what the person answers comes back as the tool's result (and in ``ElicitationResult``).

Messages are JSON-RPC 2.0, one per line. Standard library only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

QUESTION = "Which name should the release use?"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "title": "Release name"}},
          "required": ["name"]}


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def main() -> None:
    next_id = 0
    waiting: dict[int, Any] = {}  # our elicitation id -> the tools/call id it answers
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method = message.get("method")
        if method is None:  # a response to our elicitation/create
            call_id = waiting.pop(message.get("id"), None)
            if call_id is None:
                continue
            result = message.get("result") or {}
            text = json.dumps({"action": result.get("action"), "content": result.get("content")})
            send({"id": call_id, "result": {"content": [{"type": "text", "text": text}]}})
        elif method == "initialize":
            version = (message.get("params") or {}).get("protocolVersion", "2025-06-18")
            send({"id": message["id"], "result": {
                "protocolVersion": version, "capabilities": {"tools": {}},
                "serverInfo": {"name": "elicit", "version": "1.0.0"}}})
        elif method == "tools/list":
            send({"id": message["id"], "result": {"tools": [{
                "name": "ask", "description": "Ask the person for a release name.",
                "inputSchema": {"type": "object", "properties": {}}}]}})
        elif method == "tools/call":
            next_id += 1
            waiting[next_id] = message["id"]
            send({"id": next_id, "method": "elicitation/create",
                  "params": {"message": QUESTION, "requestedSchema": SCHEMA}})
        elif method == "ping":
            send({"id": message["id"], "result": {}})
        elif "id" in message:  # any other request: answer it, empty
            send({"id": message["id"], "error": {"code": -32601, "message": "not here"}})


if __name__ == "__main__":
    main()
