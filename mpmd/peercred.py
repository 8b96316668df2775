"""Who is on the other end of a Unix socket: SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS.

Only the daemon's own user may hand it events; the socket's 0600 mode already says so,
and this check holds even where a folder's permissions are looser than they should be.
"""

from __future__ import annotations

import socket
import struct
import sys

_LOCAL_PEERCRED = 0x001  # macOS <sys/un.h>, level SOL_LOCAL (0)
_XUCRED = struct.Struct("=IIh16I")  # version, uid, ngroups, groups[16]


def peer_uid(sock: socket.socket) -> int | None:
    """The peer's uid, or None when the platform cannot tell."""
    try:
        if sys.platform.startswith("linux"):
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            return uid
        if sys.platform == "darwin":
            raw = sock.getsockopt(0, _LOCAL_PEERCRED, _XUCRED.size)
            return _XUCRED.unpack(raw[: _XUCRED.size])[1]
    except OSError:
        return None
    return None
