"""The Approve and Deny links a notification carries for a held permission request.

A link is good for one request (its journal seq and its event id), one answer and a short
while, and nothing else: its token is those facts and an HMAC-SHA256 of them under a key
that never leaves this user's state folder (``notify-key``, owner-only). The notifier
(mpmd.notify) signs; the viewer (mpmd.serve.viewer, ``/act/<token>``) verifies.
Altering any byte breaks the MAC; an expired link is refused by its own time; a link
used once is refused by the viewer's memory of it, and by the request having its answer
(the first answer wins).

    token = base64url(version | seq | event_id | answer | expires_at) "." base64url(mac)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

from mpmd import durable

KEY_FILE_NAME = "notify-key"
VERSION = 1
ANSWERS = ("allow", "deny")
MAC_BYTES = 16  # 128 bits of the HMAC: forging one is out of reach
MAX_TOKEN_CHARS = 200
# The requests links answered that the viewer remembers: past this many the oldest is
# forgotten (its request has long had its answer, which refuses its links all the same).
USED_KEPT = 4096  # a token is 69 characters; anything longer is refused unread
_BODY = struct.Struct(">BQ16sBQ")  # version, seq, event id, answer, expires at (unix s)


class Action(NamedTuple):
    seq: int
    event_id: bytes
    answer: str  # "allow" or "deny"
    expires_at: int  # unix seconds


class LinkRefused(Exception):
    """Why a link is refused: ``reason`` is a short word (the counter's suffix), the
    message a sentence for the person who followed it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def load_or_create_key(state_dir: Path) -> bytes:
    """The signing key, made on first use: 256 random bits, owner-only."""
    return durable.load_or_create_token(state_dir / KEY_FILE_NAME).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:MAC_BYTES]


def sign(key: bytes, action: Action) -> str:
    if action.answer not in ANSWERS:
        raise ValueError(f"answer must be one of {ANSWERS}, not {action.answer!r}")
    if len(action.event_id) != 16:
        raise ValueError("an event id is 16 bytes")
    body = _BODY.pack(VERSION, action.seq, action.event_id, ANSWERS.index(action.answer),
                      max(0, action.expires_at))
    return f"{_b64(body)}.{_b64(_mac(key, body))}"


def verify(key: bytes, token: str, now: float) -> Action:
    """The action ``token`` stands for; LinkRefused if it was altered, is not one of ours,
    or has expired."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise LinkRefused("invalid", "This is not an mpmd action link.")
    body_text, mac_text = token.split(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise LinkRefused("invalid", "This is not an mpmd action link.") from None
    if _b64(body) != body_text or _b64(mac) != mac_text:
        # One spelling a token: base64 decoding forgives spare bits and "+/" for "-_".
        raise LinkRefused("invalid", "This is not an mpmd action link.")
    if len(body) != _BODY.size or not hmac.compare_digest(mac, _mac(key, body)):
        raise LinkRefused("invalid", "This link was altered, or is not for this mpmd.")
    version, seq, event_id, answer, expires_at = _BODY.unpack(body)
    if version != VERSION or answer >= len(ANSWERS):
        raise LinkRefused("invalid", "This is not an mpmd action link.")
    if now >= expires_at:
        raise LinkRefused("expired", "This link has expired: the request is no longer "
                                     "waiting for an answer from here.")
    return Action(seq, event_id, ANSWERS[answer], expires_at)


class Used:
    """The requests (seq, event id) a link answered: a link is good once, and once either
    answer of a request was used, both links of it are. Bounded: ``kept`` at most."""

    def __init__(self, kept: int = USED_KEPT) -> None:
        self.kept = kept
        self._seen: OrderedDict[tuple[int, bytes], None] = OrderedDict()

    def __contains__(self, action: Action) -> bool:
        return (action.seq, action.event_id) in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, action: Action) -> None:
        self._seen[(action.seq, action.event_id)] = None
        while len(self._seen) > self.kept:
            self._seen.popitem(last=False)
