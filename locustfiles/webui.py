"""The rehearsal's own tabs in Locust's web UI: the headline KPIs and the units, worst first.

Locust's web UI (2.x, React) shows extra tabs declared in
``web_ui.template_args["extended_tabs"]``, each a table whose columns are
declared in ``extended_tables`` and whose rows arrive with every
``/stats/requests`` poll (every 2 s) under ``extended_stats``. We add two
tabs: **Rehearsal** (completion rate against its target, sessions counted
by the harness and by the portal against 1,000, dossiers, lost so far,
req/s, failures) and **Units** (every unit of the stage, worst completion
first). The numbers are the telemetry sink's own (`Telemetry`), the same
that go to ``timeseries.jsonl``.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
from typing import Any

from flask import Response, request
from locust.env import Environment

from rehearsal.shared.formats import percent
from rehearsal.shared.status import completion_rate
from rehearsal.shared.wards import units_by_code

from locustfiles.context import RunContext


def kpi_rows(ctx: RunContext) -> list[dict[str, str]]:
    tel = ctx.telemetry
    row = tel.last_row
    sub, done = tel.counts["submitted"], tel.counts["complete"]
    target = ctx.stage.completion_target  # the plan's one rule, as the report's
    rate = completion_rate(done, sub, tel.counts["withdrawn"])
    portal = row.get("sessions_portal")
    return [
        {"metric": "stage", "value": ctx.stage.name, "target": f"{len(ctx.stage.units)} units"},
        {"metric": "completion rate", "value": percent(rate), "target": f">= {percent(target)}"},
        {"metric": "sessions (harness)", "value": f"{row.get('sessions_harness', 0):,}", "target": ">= 1,000"},
        {"metric": "sessions (portal)", "value": "–" if portal is None else f"{portal:,}", "target": ">= 1,000"},
        {"metric": "dossiers submitted", "value": f"{sub:,}", "target": ""},
        {"metric": "dossiers complete", "value": f"{done:,}", "target": ""},
        {"metric": "dossiers withdrawn", "value": f"{tel.counts['withdrawn']:,}", "target": "out of the rate"},
        {"metric": "requests/s", "value": f"{row.get('rps', 0):,.1f}", "target": ""},
        {"metric": "failures/s", "value": f"{row.get('fail_per_s', 0):,.2f}", "target": ""},
    ]


def unit_rows(ctx: RunContext) -> list[dict[str, Any]]:
    names = units_by_code()
    rows = []
    for code in ctx.stage.units:
        sub, done = ctx.telemetry.units.get(code, [0, 0])
        rate = done / sub if sub else None
        unit = names.get(code)
        rows.append({"unit": f"{code} {unit.name if unit else ''}", "submitted": sub, "complete": done,
                     "rate": percent(rate), "_sort": 2.0 if rate is None else rate})
    rows.sort(key=lambda r: (r["_sort"], -r["submitted"]))
    for r in rows:
        del r["_sort"]
    return rows


def install(environment: Environment, ctx: RunContext) -> None:
    """Add the tabs to the web UI of this (master or local) process, if it has one."""
    web_ui = environment.web_ui
    if web_ui is None:
        return
    web_ui.template_args["extended_tabs"] = [{"title": "Rehearsal", "key": "rehearsal"},
                                             {"title": "Units", "key": "units"}]
    web_ui.template_args["extended_tables"] = [
        {"key": "rehearsal", "structure": [{"key": "metric", "title": "Metric"}, {"key": "value", "title": "Now"},
                                           {"key": "target", "title": "Target"}]},
        {"key": "units", "structure": [{"key": "unit", "title": "Unit"}, {"key": "submitted", "title": "Submitted"},
                                       {"key": "complete", "title": "Complete"}, {"key": "rate", "title": "Rate"}]},
    ]

    @web_ui.app.after_request
    def _extend_stats(response: Response) -> Response:
        if request.path != "/stats/requests" or not response.is_json:
            return response
        body = response.get_json()
        body["extended_stats"] = [{"key": "rehearsal", "data": kpi_rows(ctx)},
                                  {"key": "units", "data": unit_rows(ctx)}]
        response.set_data(json.dumps(body))
        return response
