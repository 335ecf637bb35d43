"""The link agent's side of the national portal's integration API: sign in, call a service, know when it failed.

One keep-alive HTTP connection to the national portal. `IntegrationClient.call`
signs in when it has no session (``POST /api/dvcqg/auth`` with the unit's
code in ``X-Ma-Don-Vi``), sends ``{"session", "madonvi", "service",
"data", "isUpdating"?}`` and returns the answer when the call itself was
taken; anything else is a `LinkFailed` naming why (the connection refused or
cut, a timeout, an HTTP error, an answer that is not JSON, a call-level
``error_code`` such as "-1" "Kết nối tới hệ thống thất bại"). A session the
national portal no longer knows (``-4``) is signed in again once, at once.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from .settings import LinkSettings

#: Call-level answers: the national portal did not take the call at all (an item's own code is not one).
SESSION_GONE = "-4"


class LinkFailed(Exception):
    """A call to the national portal that was not taken; the agent backs off and tries again."""


class IntegrationClient:
    """Calls the national portal's integration API for one provincial system's account."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        url = urlsplit(settings.national_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._prefix = url.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self.session: str | None = None
        #: Calls sent, and those that failed (for the agent's log line).
        self.calls = 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        data = json.dumps(body, ensure_ascii=False).encode()
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.settings.timeout_s)
        self.calls += 1
        try:
            self._conn.request("POST", self._prefix + path, data, {"Content-Type": "application/json",
                                                                   **(headers or {})})
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException, socket.timeout) as exc:
            self.close()  # a broken connection is not used again
            raise LinkFailed(f"{path}: {type(exc).__name__}: {exc}") from None
        if response.status != 200:
            self.close()
            raise LinkFailed(f"{path}: HTTP {response.status} {raw[:200].decode('utf-8', 'replace')}")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise LinkFailed(f"{path}: an answer that is not JSON: {raw[:100]!r}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("error_code"), str):
            raise LinkFailed(f"{path}: an answer without error_code: {str(answer)[:200]}")
        return answer

    def sign_in(self) -> None:
        """A new session (`LinkFailed` when refused)."""
        s = self.settings
        answer = self._post("/api/dvcqg/auth", {"username": s.username, "password": s.password},
                            {"X-Ma-Don-Vi": s.ma_don_vi})
        if answer["error_code"] != "0" or not isinstance(answer.get("session"), str):
            raise LinkFailed(f"sign-in refused: {answer.get('error_code')} {answer.get('message')}")
        self.session = answer["session"]

    def call(self, service: str, data: Any, *, updating: bool | None = None) -> dict[str, Any]:
        """One service call; its answer when the call was taken (items may still have failed)."""
        for attempt in (1, 2):
            if self.session is None:
                self.sign_in()
            body: dict[str, Any] = {"session": self.session, "madonvi": self.settings.ma_don_vi,
                                    "service": service, "data": data}
            if updating is not None:
                body["isUpdating"] = "True" if updating else "False"
            answer = self._post("/api/dvcqg/service", body)
            if answer["error_code"] == SESSION_GONE and attempt == 1:
                self.session = None  # the national portal restarted or the session expired: once more
                continue
            if answer["error_code"] != "0" and not isinstance(answer.get("result"), list):
                raise LinkFailed(f"{service}: {answer['error_code']} {answer.get('message')}")
            return answer
        raise LinkFailed(f"{service}: the session is refused right after signing in")
