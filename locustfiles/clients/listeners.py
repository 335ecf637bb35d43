"""A system's listeners: the URLs its ``GET /api/health`` lists in ``urls``, and which one each user takes.

A reference system served with ``--listeners K`` listens on K ports, because
one source address holds only about 28,000 connections to one address and
port. User n takes ``urls[n % K]`` (n is its identity, unique across the
workers), so the users spread evenly and each keeps its listener while it
talks to that system. Each Locust process asks a system once, when the first
user is placed on it; an answer without ``urls`` (one listener, or a system
that is not the reference) leaves the URL the run gave, as before.

Only a list that names the run's own URL is taken, and only its URLs on the
same scheme and host: a system may spread users over its own ports, never
send them past what the run was given (a load balancer in front, another
host).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import itertools
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from gevent.lock import BoundedSemaphore

from rehearsal.shared.net import urlopen

log = logging.getLogger("rehearsal.clients")
#: Wall seconds before a system whose health did not answer is asked again (its users take its URL meanwhile).
RETRY_AFTER_S = 10.0

_known: dict[str, list[str]] = {}
_retry_at: dict[str, float] = {}
_asking = BoundedSemaphore()  # one health call per system and process, however many users start at once
_unnumbered = itertools.count()


def listed_urls(url: str, body: Any) -> list[str]:
    """The URLs of a health answer a user of `url` may take: `url` itself when there is no usable list."""
    urls = body.get("urls") if isinstance(body, dict) else None
    if not isinstance(urls, list) or url not in [u.rstrip("/") for u in urls if isinstance(u, str)]:
        return [url]
    base = urlsplit(url)
    return [u.rstrip("/") for u in urls
            if isinstance(u, str) and (urlsplit(u).scheme, urlsplit(u).hostname) == (base.scheme, base.hostname)]


def listeners(url: str) -> list[str]:
    """Every URL the system at `url` listens on (asked once per process; `url` alone if it lists none)."""
    found = _known.get(url)
    if found is not None:
        return found
    with _asking:
        found = _known.get(url)
        if found is not None:
            return found
        if time.monotonic() < _retry_at.get(url, 0.0):
            return [url]
        try:
            with urlopen(url + "/api/health", timeout=5) as r:
                body = json.loads(r.read())
        except Exception as exc:  # noqa: BLE001 (the system may be down now: its own URL, and ask later)
            log.info("listeners: %s/api/health did not answer (%s); users take %s", url, exc, url)
            _retry_at[url] = time.monotonic() + RETRY_AFTER_S
            return [url]
        found = _known[url] = listed_urls(url, body)
        if len(found) > 1:
            log.info("listeners: %s listens on %d ports; users spread over them", url, len(found))
        return found


def listener_for(url: str, number: int | None) -> str:
    """The URL user `number` talks to the system at `url` through (``urls[number % K]``)."""
    url = url.rstrip("/")
    urls = listeners(url)
    if len(urls) == 1:
        return urls[0]
    return urls[(next(_unnumbered) if number is None else number) % len(urls)]
