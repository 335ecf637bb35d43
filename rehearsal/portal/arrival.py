"""When a request arrived: the kernel's receive stamp, so a request's server time includes its wait to be read.

A request that reaches a busy portal waits in its connection's socket until
the process gets round to reading it: during a rehearsal's spawn burst, tens
of milliseconds that a citizen waits and a timing begun when the request is
read never sees (tools/bench/accuracy.py measured a client's wire time 35 ms
over such a server timing at p99 while its own share was 3 ms).

So the listening socket has ``SO_TIMESTAMPNS`` on (Linux; `make_server`)
and every connection it accepts inherits it: the kernel stamps each segment
it receives, a new connection's first request too while the connection still
waits in the accept queue (turned on only once a connection was accepted, it
found that request unstamped: a test caught it). `StampedReader` (the raw
reader under the handler's ``rfile``) keeps the stamp of the last segment it
read. When the handler starts the application, the request line and headers
have just been read: `StampedReader.take` gives that stamp (ns, wall clock) and
forgets it, and the request's time is counted from it. A request whose bytes
were already buffered with the previous one's (pipelining) has no stamp of
its own and is timed from when it is read, as before; so is everything where
the kernel gives no stamp (not Linux, not TCP). This is the same clock as the
harness's wire time (`locustfiles/wire.py`): both ends stamped by the kernel.
The time ends as the answer's last write is handed to the kernel
(`server.JsonErrorHandler._sendall`), as the harness's begins as the
request's first is: each end's own send is the network's, so on loopback,
where the kernel delivers to the reader inside the writer's send, the
portal's span lies inside the client's.

Both ends of the span are read from that one clock, the wall clock the
kernel stamps with (``time.time_ns``). An earlier version added the wait
before the head read (wall clock) to the rest (``perf_counter``); the
moment between its two clock reads was counted twice, and a portal
process preempted there came out a few microseconds to milliseconds above
the client's own wire time of the same request. Matched request by request
(both ends logged by connection and order on it, ~1,400 requests of
tests/test_server_latency.py's run on a busy machine), every arrival stamp
came after the client's send and every last write before the client's
receive stamp.
"""

from __future__ import annotations

import io
from typing import Any

from ..shared.stamps import ANCILLARY_SPACE, stamp_ns, turn_on


class StampedReader(io.RawIOBase):
    """A connection's raw reads, by ``recvmsg_into``, keeping the kernel's stamp of the last segment read."""

    def __init__(self, sock: Any) -> None:
        super().__init__()
        self.sock = sock
        self.arrived_ns: int | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        nbytes, ancillary, _, _ = self.sock.recvmsg_into([buffer], ANCILLARY_SPACE)
        if ancillary:
            stamp = stamp_ns(ancillary)
            if stamp is not None:
                self.arrived_ns = stamp
        return nbytes

    def take(self) -> int | None:
        """The stamp of the last segment read (ns since the epoch), once; None if none came since the last take."""
        arrived, self.arrived_ns = self.arrived_ns, None
        return arrived


def stamped_rfile(sock: Any) -> io.BufferedReader | None:
    """A buffered ``rfile`` over `sock` whose reads keep the kernel's stamps; None where the kernel gives none."""
    if not turn_on(sock):  # inherited from the listener; turned on again for a socket handed in otherwise
        return None
    return io.BufferedReader(StampedReader(sock), io.DEFAULT_BUFFER_SIZE)


def arrival(rfile: Any) -> int | None:
    """When the request just read from `rfile` arrived (ns since the epoch), if a `stamped_rfile` knows."""
    raw = getattr(rfile, "raw", None)
    return raw.take() if isinstance(raw, StampedReader) else None
