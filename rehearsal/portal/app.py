"""The reference systems' app factories: they assemble each system from its blueprints, they hold no route.

`create_app(settings)` builds the app of the system the settings name:
the single portal of old (both roles, ``--face``), `create_national_app`
(citizens, payments, the integration API; no officers) or
`create_provincial_app` (officers, the outbox, the link's admin call; no
citizens: they come through the national portal, or the front door of
`rehearsal.portal.frontdoor`). `assemble` puts an app together from its parts:
the settings and shared state in the app's config, one blueprint per role
(`auth`, `citizen`, `payments` for the intermediary, `officer`, `ops`,
`admin`, `dvcqg_api`, `linkadmin`), the path
converter for dossier ids (`inputs.DossierIdConverter`), the error handlers
that answer every error as ``{"error", "field", "message"}`` (werkzeug's own
4xx included), and the server-side timing of each call. What a client sends
is read through `rehearsal.portal.inputs`.
`docs/portal-api.md` is the contract the blueprints implement. Rules they
keep, not the harness: a citizen sees only their own dossiers, an officer acts
only on dossiers of their own unit, a citizen may file at any unit, the
lifecycle is a state machine (409 on a wrong step), and a 2xx on a write means
the write is committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..shared.catalogue import load_catalogue
from . import admin, auth, citizen, feed, linkadmin, officer, ops, outbox, payments
from .db import close_db, get_db, init_db
from .dvcqg_api import bp as dvcqg_bp
from .errors import ApiError, error_body
from .faults import FaultState
from .inputs import DossierIdConverter, PathRefusal, shown
from .live import LiveView, interval_for
from .settings import PortalSettings
from .supervisor import LinkSupervisor

#: Flask's own errors (no route, wrong method, body too large, a crash), answered in the portal's shape.
_HTTP_ERRORS: dict[int, tuple[str, Callable[[], str]]] = {
    404: ("not_found", lambda: f"no such path {shown(request.path, 200)}"),
    405: ("method_not_allowed", lambda: f"{request.method} not allowed here"),
    413: ("too_large", lambda: "request body too large"),
    500: ("internal", lambda: "the portal failed; see its log"),
}


def create_app(settings: PortalSettings) -> Flask:
    """The app of the system `settings` names; `init_db` runs here (idempotent)."""
    if settings.system == "national":
        return create_national_app(settings)
    if settings.system == "provincial":
        return create_provincial_app(settings)
    init_db(settings)
    return assemble(settings, (admin.bp, auth.vneid_bp, auth.officer_bp, auth.bp, citizen.bp, payments.bp,
                               payments.intermediary_bp, officer.bp, ops.bp), API="portal")


def create_national_app(settings: PortalSettings) -> Flask:
    """The national portal: citizens (VNeID, catalogue, filing, payment, following) and the integration API."""
    init_db(settings)

    def stats_extra() -> dict[str, Any]:
        return {"feed_seq": feed.head(get_db())}

    return assemble(settings, (admin.bp, auth.vneid_bp, auth.bp, citizen.bp, payments.bp, payments.intermediary_bp,
                               dvcqg_bp, ops.bp), API="national", STATS_EXTRA=stats_extra)


def create_provincial_app(settings: PortalSettings) -> Flask:
    """A provincial one-stop system: officers of every unit, the outbox, and its link agent's supervisor."""
    init_db(settings)
    faults = FaultState()
    supervisor = LinkSupervisor(settings, faults) if settings.link is not None else None

    def stats_extra() -> dict[str, Any]:
        block = outbox.link_block(get_db())
        link = current_app.config.get("LINK")  # process 0's supervisor, or its proxy in the other processes
        block.update(link.as_dict() if link else {"configured": False, "agent_alive": False, "agent_restarts": 0})
        return {"link": block}

    return assemble(settings, (admin.bp, auth.officer_bp, auth.bp, officer.bp, linkadmin.bp, ops.bp),
                    API="provincial", FAULTS=faults, LINK=supervisor, STATS_EXTRA=stats_extra,
                    ON_FAULTS=supervisor.faults_changed if supervisor else None)


def assemble(settings: PortalSettings, blueprints: Iterable[Blueprint], live: LiveView | None = None,
             **config: Any) -> Flask:
    """A Flask app of these blueprints, with the shared state, the error answers and the timing of each call."""
    app = Flask(__name__)
    catalogue = load_catalogue()
    live = live or LiveView(settings.active_window_s, interval_for(settings.time_scale), settings.server_timing)
    app.config.update(PORTAL=settings, LIVE=live, CATALOGUE=catalogue,
                      PROCEDURE_SUMMARIES=[p.summary() for p in catalogue.procedures],
                      SESSIONS={}, OTPS={}, FAULTS=FaultState(),
                      # The largest body any call takes; JSON bodies have their own, smaller limits (inputs.read_json).
                      MAX_CONTENT_LENGTH=max(settings.max_dossier_bytes + 256 * 1024, settings.max_import_bytes),
                      JSON_AS_ASCII=False)
    app.config.update(config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.teardown_appcontext(close_db)
    app.url_map.converters["int"] = DossierIdConverter  # before the routes are added: they use it
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    _answer_errors(app)
    _time_requests(app)
    return app


def _answer_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify(exc.body()), exc.status

    @app.errorhandler(PathRefusal)
    def _path_refusal(exc: PathRefusal) -> tuple[Response, int]:
        return jsonify(exc.error.body()), exc.error.status

    @app.errorhandler(HTTPException)
    def _werkzeug_error(exc: HTTPException) -> Response | tuple[Response, int]:
        """Any other 4xx werkzeug raises (a form it cannot parse, too many parts…), answered in the portal's shape."""
        if exc.code is None or exc.code < 400:
            return exc.get_response()
        error = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(error, exc.description or exc.name or "refused")), exc.code

    for status, (error, message) in _HTTP_ERRORS.items():
        def _http_error(_exc: Exception, status: int = status, error: str = error,
                        message: Callable[[], str] = message) -> tuple[Response, int]:
            return jsonify(error_body(error, message())), status

        app.register_error_handler(status, _http_error)


def _time_requests(app: Flask) -> None:
    """Record each call's server-side time in the live view, named by its route."""

    @app.after_request
    def _name_endpoint(response: Response) -> Response:
        # Named by route, not path, so dossier ids do not explode the table.
        rule = request.url_rule.rule if request.url_rule else "<unmatched>"
        request.environ["rehearsal.endpoint"] = (f"{request.method} {rule}", response.status_code >= 500)
        if app.config.get("PROCESSES", 1) > 1:  # which process answered (several share the listening socket)
            response.headers["X-Portal-Process"] = str(app.config["PROCESS_INDEX"])
        return response

    flask_app = app.wsgi_app
    live: LiveView = app.config["LIVE"]

    def timed_wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Server-side timing of the whole WSGI call, where the server does not time it (a test client)."""
        if environ.get("rehearsal.timed_by_server"):  # the portal's server times it, the answer's writing too
            return flask_app(environ, start_response)
        t0 = time.perf_counter()
        body = flask_app(environ, start_response)
        endpoint, error = environ.get("rehearsal.endpoint", ("<unmatched>", False))
        live.record(endpoint, time.perf_counter() - t0, error)
        return body

    app.wsgi_app = timed_wsgi_app  # type: ignore[method-assign]
