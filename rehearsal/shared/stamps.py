"""The kernel's receive stamps (``SO_TIMESTAMPNS``): one reading for both ends of a latency figure.

The harness's wire time (`locustfiles.wire`) and the portal's arrival time
(`rehearsal.portal.arrival`) both come from the stamp the kernel puts on each
segment it receives, read with ``recvmsg`` beside the bytes. This module is
how either end turns the stamps on and reads one: Linux only; elsewhere
`ANCILLARY_SPACE` is 0 and `turn_on` says False, and each end keeps its
other clock.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

#: ``SO_TIMESTAMPNS`` on Linux (asm-generic/socket.h; Python does not name it); its control message is of that type.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
#: The ancillary buffer for ``recvmsg``: room for one stamp (0 where the platform has no ``CMSG_SPACE``).
ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_SOL_SOCKET, _SIZE, _unpack = socket.SOL_SOCKET, _TIMESPEC.size, _TIMESPEC.unpack_from


def turn_on(sock: Any) -> bool:
    """Ask the kernel to stamp what `sock` receives (a listener passes it to what it accepts); False if it cannot."""
    if not ANCILLARY_SPACE or getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def stamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The receive stamp (ns since the epoch, CLOCK_REALTIME) in a ``recvmsg`` answer's ancillary data, if any.

    Called on every read of every answer: the buffer has room for one control message, so only the first is looked at.
    """
    if not ancillary:
        return None
    level, kind, payload = ancillary[0]
    if kind != SO_TIMESTAMPNS or level != _SOL_SOCKET or len(payload) < _SIZE:
        return None
    seconds, nanoseconds = _unpack(payload)
    return seconds * 1_000_000_000 + nanoseconds
