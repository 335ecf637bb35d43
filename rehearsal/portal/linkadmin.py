"""The operator's hand on a provincial system's link: ``POST /api/admin/link {"action": "kill" | "start"}``.

``kill`` kills the link agent (-9: no chance to finish what it was doing)
and keeps it down; ``start`` starts it again. What a real outbox process's
crash and restart look like, on demand (the harness's ``link-kill`` fault).
The answer is the link block of ``/api/stats``. Admin only, like every
``/api/admin/`` call (`rehearsal.portal.admin`).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from . import outbox
from .db import get_db
from .errors import InvalidField, WrongState
from .inputs import json_object, text
from .supervisor import LinkSupervisor

bp = Blueprint("linkadmin", __name__)


@bp.post("/api/admin/link")
def link_action() -> Response:
    """Kill (-9) or start the link agent."""
    action = text(json_object("action"), "action", max_len=10)
    if action not in ("kill", "start"):
        raise InvalidField("expected kill or start", "action")
    supervisor: LinkSupervisor | None = current_app.config.get("LINK")
    if supervisor is None:
        raise WrongState("this system has no link agent (started without --national-url)", "action")
    if action == "kill":
        supervisor.kill()
    else:
        supervisor.start()
    return jsonify(action=action, **outbox.link_block(get_db()), **supervisor.as_dict())
