"""Two fixes to geventhttpclient's connection pool, so the latency we record is the portal's.

Locust's ``FastHttpUser`` gets its connections from
``geventhttpclient.connectionpool.ConnectionPool`` (2.6.1, the newest release
when this was written). Two of its habits put the load generator's own waits
into every response time; tools/bench/accuracy.py found them on a rehearsal of
1,000 citizens against a page held exactly 50 ms, where the harness measured
p50 68 ms while the portal timed 51 ms and ``wrk`` on the same page at the
same moment 51 ms:

1. **The idle-socket check.** Before reusing a pooled keep-alive socket the
   pool asks ``select.select([sock], [], [], 0.0)`` whether it is readable.
   Under gevent that ``select`` can yield to the hub, so the request waits
   behind every other ready greenlet (p99 166 ms with 1,000 users in the
   process); and ``select`` cannot take a descriptor of 1024 or more, so in a
   process with more than ~1,000 connections the check raises, the socket is
   taken for dead and a new connection is opened for almost every request.
   Replaced by a non-blocking ``recv(MSG_PEEK)`` on the raw socket: nothing to
   read means alive; a FIN, an error or stray bytes mean not (exactly what the
   ``select`` test meant), and it never yields. The test is one ``poll()`` of
   the descriptor with a zero timeout (the C library's, not gevent's, and on
   any descriptor number): readable, hung up or in error means not alive. It
   runs before every request that reuses a connection, so it is the cheapest
   of the ways to ask (1.3 µs, against 2.3 µs for the ``recv(MSG_PEEK)`` that
   raises when nothing is there, and 4 µs when its flags are OR-ed as enums).
2. **Resolving an address literal.** Each new connection resolves its host
   with gevent's ``getaddrinfo``, which runs in gevent's thread pool even for
   ``127.0.0.1``: p50 11 ms, p90 50 ms per connection while users were
   spawning. A host that is an IP address literal (every loopback target, and
   any allow-listed target given by address) is now resolved in the calling
   greenlet, with ``AI_NUMERICHOST`` so the C library cannot touch the
   network. A host name still goes through gevent's resolver, as before.

`install` is idempotent and leaves the pool alone (with a log line) when a
future geventhttpclient no longer has the methods it replaces.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

from gevent.monkey import get_original

log = logging.getLogger("rehearsal.connections")

_original_getaddrinfo = get_original("socket", "getaddrinfo")
#: The C library's poll (gevent replaces ``select.poll``), one poll set per OS thread: never yields, any fd.
_poll_class, _POLLIN = get_original("select", ["poll", "POLLIN"])
_per_thread = get_original("threading", "local")()


def is_socket_alive(self: Any, sock: Any) -> bool:
    """Whether a pooled idle keep-alive socket may be reused: open, and nothing waiting to be read."""
    if sock is None:
        return False
    try:
        fd = sock.fileno()
        if fd < 0:
            return False
        poller = getattr(_per_thread, "poller", None)
        if poller is None:
            poller = _per_thread.poller = _poll_class()
        poller.register(fd, _POLLIN)
        try:
            # Any event on an idle socket (bytes nobody asked for, the peer's FIN, a hang-up or an error) means
            # it is not fit for the next request.
            return not poller.poll(0)
        finally:
            poller.unregister(fd)
    except (OSError, ValueError):
        return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def make_resolve(original: Any) -> Any:
    def resolve(self: Any) -> list[tuple[Any, ...]]:
        """The pool's address list: an address literal here and now, a host name by gevent's resolver."""
        host = self._connection_host
        if not _is_address(host):
            return original(self)
        family = socket.AF_INET if self.disable_ipv6 else 0
        return _original_getaddrinfo(host.strip("[]"), self._connection_port, family, socket.SOCK_STREAM,
                                     socket.SOL_TCP, socket.AI_NUMERICHOST)
    resolve.__wrapped__ = original  # type: ignore[attr-defined]
    return resolve


def install() -> bool:
    """Put both fixes on geventhttpclient's ConnectionPool; False when it has changed shape."""
    from geventhttpclient.connectionpool import ConnectionPool

    if getattr(ConnectionPool, "_rehearsal_fixed", False):
        return True
    if not all(hasattr(ConnectionPool, m) for m in ("_is_socket_alive", "_resolve")):
        log.warning("geventhttpclient's ConnectionPool has changed: connection fixes not installed")
        return False
    ConnectionPool._is_socket_alive = is_socket_alive  # type: ignore[method-assign]
    ConnectionPool._resolve = make_resolve(ConnectionPool._resolve)  # type: ignore[method-assign]
    ConnectionPool._rehearsal_fixed = True  # type: ignore[attr-defined]
    return True
