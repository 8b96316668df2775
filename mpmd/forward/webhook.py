"""A webhook: the stored events as JSON, batched, signed with HMAC-SHA256.

    POST <url>
    Content-Type: application/json
    X-Mpmd-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with secret_file>
    X-Mpmd-Delivery: <first seq>-<last seq>

    {"events": [<stored event>, ...]}

The events are the journal's lines, byte for byte (docs/events.md). Any 2xx is delivered.
"""

from __future__ import annotations

import hashlib
import hmac

from mpmd.forward.config import ForwardConfig, read_secret
from mpmd.forward.http import Outcome
from mpmd.storage.journal import line_seq

SIGNATURE_HEADER = "X-Mpmd-Signature"
DELIVERY_HEADER = "X-Mpmd-Delivery"


def sign(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, signature: str) -> bool:
    """For receivers (and the tests): constant-time comparison."""
    return hmac.compare_digest(sign(key, body), signature)


class WebhookSender:
    content_type = "application/json"

    def __init__(self, cfg: ForwardConfig) -> None:
        self.cfg = cfg
        self._key = read_secret(cfg)

    def encode(self, lines: list[bytes]) -> tuple[bytes, dict[str, str]]:
        body = b'{"events":[' + b",".join(lines) + b"]}"
        return body, {SIGNATURE_HEADER: sign(self._key, body),
                      DELIVERY_HEADER: f"{line_seq(lines[0])}-{line_seq(lines[-1])}"}

    def accepted(self, body: bytes, count: int) -> Outcome:
        return Outcome("ok")
