"""The closed door's answers: what a system says to people once an operator has closed or frozen it.

``POST /api/admin/close`` (`rehearsal.portal.admin`) sets the door's mode:

- ``503``: every call is answered 503 with ``Retry-After`` and the new
  address (``X-Portal-Moved``, and ``moved_to`` in the body);
- ``redirect``: every call is a 308 to the same path on the new address;
- ``freeze`` (a cutover's first phase, `rehearsal.plan.runbook`): only new
  dossiers are refused (503 with ``Retry-After``, no new address: the door
  has not moved yet); signing in, following, paying, supplementing and
  withdrawing still work, so what is in flight can land before the switch.

A door is for people: the integration API between the systems
(``/api/dvcqg/``) never closes with it. That is what lets the national
portal send HCMC's citizens back to the city portal when a cutover is
rolled back (``close`` on the national portal with ``moved_to`` the city
portal's address) while the link keeps pulling what was filed on it into
the provincial system and pushing every step back.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, request

from .errors import error_body
from .faults import Closed

#: The modes ``POST /api/admin/close`` takes.
DOOR_MODES = ("503", "redirect", "freeze")
#: The calls that file a new dossier, on each citizen API (the national portal's, the city portal's).
FILING = frozenset({("POST", "/api/dossiers"), ("POST", "/dichvucong/api/hoso")})
#: Paths a closed door never closes: the systems' integration API (the link), not people's calls.
SYSTEMS_ONLY = ("/api/dvcqg/",)


def closed_answer(closed: Closed | None) -> Any:
    """The answer of the closed (or frozen) door to this request, or None when it goes through."""
    if closed is None or request.path.startswith(SYSTEMS_ONLY):
        return None
    if closed.mode == "freeze":
        if (request.method, request.path.rstrip("/")) not in FILING:
            return None
        return jsonify(error_body("frozen", "this portal takes no new dossiers during the cutover; "
                                            "following and paying still work")), 503, \
            {"Retry-After": str(closed.retry_after_s)}
    if closed.mode == "redirect":
        response = redirect(closed.moved_to.rstrip("/") + request.full_path.rstrip("?"), code=308)
        response.headers["X-Portal-Moved"] = closed.moved_to
        return response
    body = jsonify(moved_to=closed.moved_to, **error_body("moved", f"this portal has closed; use {closed.moved_to}"))
    return body, 503, {"Retry-After": str(closed.retry_after_s), "X-Portal-Moved": closed.moved_to}
