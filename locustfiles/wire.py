"""Wire time: how long the system took, as the kernel saw it, without the generator's own waits.

Locust times a request from before it builds it to after its greenlet has
read the whole answer. Whatever the generator does in between is in that
figure: building headers, waiting for its turn on the event loop while other
users' answers are handled first, Python parsing the answer. With ten users
against a page held exactly 50 ms that was 1.5–2.5 ms of every request here
(a bare ``FastHttpUser`` and a bare geventhttpclient loop alike, and the
harness no worse), where ``wrk`` added 0.7 ms (tools/bench/accuracy.py).

So every connection of geventhttpclient's pool (Locust's ``FastHttpUser``)
is made with ``SO_TIMESTAMPNS`` (Linux): the kernel stamps each segment it
receives, and this socket reads with ``recvmsg`` to keep the stamp of the
last segment read. A request's **wire time** runs from the moment its first
byte is handed to the kernel to the kernel's receipt of the last byte of its
answer: what ``wrk`` measures. The generator's scheduling and parsing after
the answer has arrived are not in it, nor is a new connection's handshake
(as in ``wrk``: the greenlet that opened it may resume late to send, and
that wait is the generator's; Locust's own timing keeps both).

`take` hands the current greenlet's wire time of the request that just
ended to the latency recorder (`locustfiles.latency`), which records it in
place of Locust's figure; it gives None (the recorder keeps Locust's) when
no stamp came (TLS, a system without ``SO_TIMESTAMPNS``, a request that
failed before an answer) or when the stamps cannot belong to that request
(a wire time longer than Locust's own timing of it). Locust's own
statistics (its web UI, its CSV) keep Locust's timing; the difference is
the generator's share.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import gevent.socket
from gevent import getcurrent

from rehearsal.shared.stamps import ANCILLARY_SPACE, stamp_ns, turn_on

log = logging.getLogger("rehearsal.wire")

#: Attribute names on the user's greenlet: when the request began on the wire (ns), and the control messages of
#: the last read of its answer (its stamp: `stamp_ns`).
SENT, RECEIVED = "_rehearsal_wire_sent", "_rehearsal_wire_received"


def _mark_sent() -> None:
    g = getcurrent()
    if getattr(g, SENT, None) is None:
        setattr(g, SENT, time.time_ns())  # the kernel's stamps are CLOCK_REALTIME too


class WireSocket(gevent.socket.socket):
    """A gevent socket that notes when a request leaves and when the kernel received the answer's last byte.

    The first read after a send waits for the socket to be readable before
    it reads. gevent's socket reads first and waits only when the kernel
    says "nothing yet"; right after a request has left, that is always the
    answer, so each request paid a system call and a raised exception for
    it. An answer already there is read at the next turn of the event loop.
    With the other cuts of that change (docs/benchmarks.md), our users went
    from 0.80x to 0.92x a bare ``FastHttpUser`` in requests per CPU-second.
    """

    __slots__ = ("_answer_due",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answer_due = False

    def sendall(self, data: Any, flags: int = 0) -> None:
        _mark_sent()
        if type(data) is bytes:  # (what geventhttpclient sends) first straight to the kernel, which nearly always
            try:                 # takes a whole request at once: four Python calls of gevent's fewer per request
                sent = self._sock.send(data, flags)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                super().sendall(data[sent:], flags)  # the rest as gevent sends it: waits, and the socket's timeout
        else:
            super().sendall(data, flags)
        self._answer_due = True

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._answer_due:
            self._answer_due = False
            if self.timeout != 0.0:  # (a non-blocking socket's caller wants "nothing yet" as an error, as before)
                self._wait(self._read_event)  # the socket's timeout applies, as to gevent's own wait in recv
        sock = self._sock  # (gevent's own recvmsg, inlined: the same loop, one call less on every read)
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(bufsize, ANCILLARY_SPACE, flags)
                break
            except BlockingIOError:
                if self.timeout == 0.0:
                    raise
            self._wait(self._read_event)
        if ancillary:
            setattr(getcurrent(), RECEIVED, ancillary)  # read in `take`: once per request, not once per read
        return data


def create_tcp_socket(self: Any, family: int, socktype: int, protocol: int) -> gevent.socket.socket:
    """The pool's socket factory: a `WireSocket` with kernel receive stamps on."""
    sock = WireSocket(family, socktype, protocol)
    turn_on(sock)  # where it cannot (not Linux): no stamps, the recorder keeps Locust's timing
    return sock


def reset() -> None:
    """Forget the current greenlet's stamps (before a request, and once one is taken)."""
    g = getcurrent()
    setattr(g, SENT, None)
    setattr(g, RECEIVED, None)


def take(response_time_ms: float) -> tuple[float, float] | None:
    """(sent, received) in wall seconds of the request that just ended in this greenlet, or None; resets the stamps.

    None when either stamp is missing, or when the wire time exceeds
    `response_time_ms` (Locust's timing encloses the wire's, so such stamps
    are left over from something else).
    """
    g = getcurrent()
    sent, ancillary = getattr(g, SENT, None), getattr(g, RECEIVED, None)
    if sent is None and ancillary is None:
        return None
    setattr(g, SENT, None)
    setattr(g, RECEIVED, None)
    received = stamp_ns(ancillary) if ancillary else None  # the last read's stamp
    if sent is None or received is None or received < sent or (received - sent) > response_time_ms * 1e6 + 1e5:
        return None
    return sent / 1e9, received / 1e9


def install() -> bool:
    """Make geventhttpclient's pool open `WireSocket` connections (Linux only; idempotent); False if it did not."""
    from geventhttpclient.connectionpool import ConnectionPool

    if getattr(ConnectionPool, "_rehearsal_wire", False):
        return True
    if not sys.platform.startswith("linux") or not ANCILLARY_SPACE:
        return False
    if not hasattr(ConnectionPool, "_create_tcp_socket"):
        log.warning("geventhttpclient's ConnectionPool has changed: wire times not taken, Locust's kept")
        return False
    ConnectionPool._create_tcp_socket = create_tcp_socket  # type: ignore[method-assign]
    ConnectionPool._rehearsal_wire = True  # type: ignore[attr-defined]
    return True
