"""Every user's cookie jar: the standard library's, without its work on requests that carry no cookies.

Locust's ``FastHttpUser`` keeps a ``http.cookiejar.CookieJar`` per user,
and geventhttpclient asks it, on every request, to add the ``Cookie``
header (a lock, a walk of its domains, then a walk of every cookie to drop
the expired ones) and, on every answer, to take the cookies it sets (a lock
and two header look-ups). The systems we rehearse carry their sessions in a
header (a bearer token, ``X-Ma-Phien``), so the jar is empty and all of that
finds nothing: 5–8 µs of the ~130–270 µs a request costs the generator here
(py-spy of ``tools/bench/overhead.py``'s users, in Locust's and in ours).

`LeanCookieJar` skips that work exactly when it would find nothing: adding
when no cookie was ever stored, taking when the answer sets none. Anything a
system does set (a load balancer's affinity cookie, a real portal's session
cookie) is kept and sent back as before, by the standard library's code.
"""

from __future__ import annotations

from http.cookiejar import CookieJar
from typing import Any


class LeanCookieJar(CookieJar):
    """A `CookieJar` that does nothing, quickly, while there is nothing to do."""

    def add_cookie_header(self, request: Any) -> None:
        if self._cookies:  # (a domain whose cookies were all cleared keeps its key: the full path then, as before)
            super().add_cookie_header(request)

    def extract_cookies(self, response: Any, request: Any) -> None:
        headers = response.info()
        if headers.get_all("Set-Cookie", None) or headers.get_all("Set-Cookie2", None):
            super().extract_cookies(response, request)


def install(user: Any) -> None:
    """Give a ``FastHttpUser`` a `LeanCookieJar` (before its first request: an empty jar for an empty one)."""
    jar = LeanCookieJar()
    user.client.cookiejar = jar  # Locust's session (its docs: ``self.client.cookiejar``)
    user.client.client.cookiejar = jar  # and the geventhttpclient user agent that uses it
