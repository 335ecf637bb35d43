"""The reference systems: the national portal, provincial one-stop systems, their front doors and the link.

`create_app(settings)` builds the Flask app of the system `settings` names
(the single portal of old, the national portal, or a provincial system;
`create_front_door_app` the city-style front door a provincial process also
serves); `serve(settings, …)` runs it on gevent's WSGI server. The APIs are
documented in ``docs/portal-api.md``, ``docs/integration-api.md`` and
``docs/city-portal-api.md``.

The app is imported when first asked for, so that a process that needs only
the database layer (the link agent) does not load Flask's whole app.
"""

from __future__ import annotations

from typing import Any

from .settings import PortalSettings

__all__ = ["PortalSettings", "create_app", "create_front_door_app", "create_national_app",
           "create_provincial_app"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "create_national_app", "create_provincial_app"):
        from . import app

        return getattr(app, name)
    if name == "create_front_door_app":
        from .frontdoor import create_front_door_app

        return create_front_door_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
