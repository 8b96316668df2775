"""Who may reach the viewer: the token file, and the checks every request passes.

The viewer listens on loopback TCP, which every local user and every web page the user
visits can reach. Three checks keep them out (docs/viewer.md):
  - Host must name the viewer itself, or a DNS-rebinding page could read it as same-origin;
  - Origin, when sent (browsers always send it on WebSockets), must be the viewer's own, or
    any site could open a WebSocket to it (cross-site WebSocket hijacking);
  - the token, 256 random bits kept owner-only, must come with every WebSocket and API
    request, and is compared in constant time.
The action links (/act/<signed link>, mpmd.serve.links) are their own credential: they
need no token, and they alone also answer to the Host the user reaches the viewer by
through a tunnel (viewer_public_url), and to that Host's origins.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mpmd import durable
from mpmd.counters import Count

log = logging.getLogger("mpmd.serve.access")

TOKEN_FILE_NAME = "viewer-token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")

# Why a request was refused; each is also the name of the counter it bumps.
REFUSED_HOST = Count.VIEWER_REFUSED_HOST
REFUSED_ORIGIN = Count.VIEWER_REFUSED_ORIGIN
REFUSED_TOKEN = Count.VIEWER_REFUSED_TOKEN


def load_or_create_token(state_dir: Path) -> str:
    """The viewer token, made on first start (mpmd.durable.load_or_create_token)."""
    return durable.load_or_create_token(state_dir / TOKEN_FILE_NAME)


def allowed_hosts(port: int) -> frozenset[str]:
    return frozenset(f"{name}:{port}" for name in LOOPBACK_NAMES)


def allowed_origins(port: int) -> frozenset[str]:
    return frozenset(f"http://{name}:{port}" for name in LOOPBACK_NAMES)


def token_of(path: str, authorization: str | None) -> str | None:
    """The token a request carries: ``Authorization: Bearer`` or ``?token=``."""
    if authorization and authorization.startswith("Bearer "):
        return authorization[len("Bearer "):].strip()
    values = parse_qs(urlsplit(path).query).get("token")
    return values[0] if values else None


def token_matches(given: str | None, token: str) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def check_host_origin(port: int, host: str | None, origin: str | None,
                      public_host: str | None = None) -> str | None:
    """The refusal (a counter name) for a request's Host and Origin, or None when both are
    the viewer's own: on loopback, or ``public_host`` (``name[:port]``) when given (the
    viewer passes it for action links only)."""
    hosts, origins = allowed_hosts(port), allowed_origins(port)
    if public_host:
        hosts |= {public_host}
        origins |= {f"http://{public_host}", f"https://{public_host}"}
    if host is None or host not in hosts:
        return REFUSED_HOST
    if origin is not None and origin not in origins:
        return REFUSED_ORIGIN
    return None
