"""A WebSocket viewer for conformance tests: what the page would receive, in a thread.

It connects as the page does (the ``ws_url`` of ``mpmd status``, token included), subscribes
from the start, and keeps every ``sessions`` row and event it is sent, so a test can wait for
the table to reach a state while it drives Claude Code.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from websockets.asyncio.client import connect


class SessionsFeed:
    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.sessions: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []  # every session row, as sent
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._live = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.error: BaseException | None = None

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with connect(self.ws_url, compression=None) as ws:
                await ws.send(json.dumps({"type": "subscribe"}))
                stop = asyncio.ensure_future(self._stop.wait())
                while not self._stop.is_set():
                    recv = asyncio.ensure_future(ws.recv())
                    await asyncio.wait({recv, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if not recv.done():
                        recv.cancel()
                        break
                    self._take(json.loads(recv.result()))
        except BaseException as exc:  # noqa: BLE001 - reported to the test by .row()
            self.error = exc
            self._live.set()

    def _take(self, message: dict[str, Any]) -> None:
        with self._lock:
            if message["type"] == "sessions":
                for row in message["sessions"]:
                    self.sessions[row["session_id"]] = row
                    self.history.append(row)
            elif message["type"] == "events":
                self.events += message["events"]
            elif message["type"] == "live":
                self._live.set()

    def __enter__(self) -> SessionsFeed:
        self._thread.start()
        if not self._live.wait(30):
            raise AssertionError("the viewer never said it was live")
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def row(self, session_id: str | None = None) -> dict[str, Any] | None:
        """The latest row of a session (of the only one, when not named)."""
        if self.error is not None:
            raise self.error
        with self._lock:
            if session_id is None:
                return next(iter(self.sessions.values()), None) if len(self.sessions) == 1 \
                    else None
            return self.sessions.get(session_id)
