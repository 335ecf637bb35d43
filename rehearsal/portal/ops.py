"""The portal's own view of itself: health, statistics, Prometheus metrics, its OpenAPI document.

What the portal counts here (active sessions, dossiers by status and unit,
server-side request timings) is the second witness beside the harness's own
counts: the proof of 1,000+ concurrent sessions needs both. Faults never touch
these calls (`faults.EXEMPT_PREFIXES`), so the portal stays observable.
"""

from __future__ import annotations

import time

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from ..shared.status import COMPLETE_SQL
from .context import live, settings
from .db import get_db
from .inputs import query_int
from .metrics import CONTENT_TYPE, SystemFigures, exposition, system_label
from .openapi_systems import spec

bp = Blueprint("ops", __name__)


def _counts() -> tuple[dict[str, int], dict[str, dict[str, int]], int]:
    db = get_db()
    by_status = {str(s): n for s, n in db.execute("SELECT status, count(*) FROM dossiers GROUP BY status")}
    by_unit = {str(u): {"submitted": n, "complete": c} for u, n, c in db.execute(
        f"SELECT unit_code, count(*), sum(status IN {COMPLETE_SQL}) FROM dossiers GROUP BY unit_code")}
    return by_status, by_unit, sum(by_status.values())


@bp.get("/openapi.json")
def openapi() -> Response:
    """The API as an OpenAPI 3 document."""
    return jsonify(spec(current_app.config.get("API", "portal")))


def _who() -> dict[str, Any]:
    """Which portal or system answers: its face (the single portal of old), or its system and name."""
    cfg = settings()
    if cfg.system == "portal":
        return {"face": cfg.face}
    return {"system": current_app.config.get("API", cfg.system), "name": cfg.name}


@bp.get("/api/health")
def health() -> Response:
    """Liveness, which face or system this is, and every URL it listens on (a harness spreads users over them)."""
    cfg = current_app.config
    # Said only when there is more than one process or URL: a single portal answers as it always has.
    extra = {"urls": cfg["URLS"], "processes": cfg["PROCESSES"], "process": cfg["PROCESS_INDEX"]} \
        if cfg.get("PROCESSES", 1) > 1 or len(cfg.get("URLS", ())) > 1 else {}
    return jsonify(ok=True, **_who(), **extra)


@bp.get("/api/stats")
def stats() -> Response:
    """Sessions, dossiers and request timings, as the portal sees them."""
    view, cfg = live(), settings()
    active = view.active()
    by_status, by_unit, total = _counts()
    timings = {name: {"count": t.count, "errors": t.errors, "p50_ms": t.percentile_ms(0.5),
                      "p95_ms": t.percentile_ms(0.95), "p99_ms": t.percentile_ms(0.99)}
               for name, t in sorted(view.merged_timings().items())}
    extra = current_app.config.get("STATS_EXTRA")
    return jsonify(**_who(), sessions_active=sum(active.values()), sessions_by_role=active,
                   window_s=cfg.active_window_s, dossiers_by_status=by_status, dossiers_by_unit=by_unit,
                   dossiers_total=total, requests=timings, uptime_s=round(time.time() - view.started, 1),
                   **(extra() if extra else {}))


@bp.get("/metrics")
def metrics() -> Response:
    """The same figures in Prometheus text format (`rehearsal.portal.metrics`), every process counted."""
    view, cfg, app = live(), settings(), current_app.config
    by_status, by_unit, _ = _counts()
    extra = app.get("STATS_EXTRA")
    figures = SystemFigures(
        system=system_label(app.get("API", cfg.system), cfg.system, cfg.name, cfg.face),
        sessions_by_role=view.active(), window_s=cfg.active_window_s, dossiers_by_status=by_status,
        dossiers_by_unit=by_unit, timings=view.merged_timings(), uptime_s=time.time() - view.started,
        processes=app.get("PROCESSES", 1), listeners=len(app.get("URLS") or ()) or 1,
        extra=extra() if extra else {})
    return Response(exposition(figures), content_type=CONTENT_TYPE)


#: What the server-side times of ``/api/timings`` cover (said in every answer).
TIMING_COVERS = ("from the request's arrival (the kernel's receive stamp of its head, so its wait in a busy "
                 "portal's socket, or in the accept queue once it has arrived, is in; where there is no stamp, from "
                 "its head read) to the answer's last write handed to the kernel; not the wait for a connection's "
                 "next request, not the network")


@bp.get("/api/timings")
def timings() -> Response:
    """Server-side time per route as HDR histograms per interval, from ``since`` (epoch s), every process merged."""
    view = live()
    since = query_int("since", 0, 0, 2**40)
    now = time.time()
    intervals = []
    for t0, routes in sorted(view.intervals_since(since).items()):
        intervals.append({"t0": t0, "t": t0 + view.interval_s, "closed": t0 + view.interval_s <= now,
                          "routes": {name: {"count": e[1], "errors": e[2], "hdr": e[0].encode().decode("ascii")}
                                     for name, e in sorted(routes.items())}})
    return jsonify(**_who(), interval_s=view.interval_s, now=now, unit="us", covers=TIMING_COVERS,
                   processes=current_app.config.get("PROCESSES", 1), intervals=intervals)
