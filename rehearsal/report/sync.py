"""The report's sync panel: the two systems side by side, the link between them, and what did not cross it.

For one stage, from ``summary.json`` only (`rehearsal.results.sync`,
`rehearsal.results.threeway`): tiles for the sync lag (p50 · p95, the
longest; WALL seconds, which the panel says), the outbox backlog (peak ·
end), unsynced and not-delivered dossiers and the link agent's restarts;
lag over time (p50 and p95 per interval of ``sync.series``) and the backlog
over time (the 2-second time series' ``sync_backlog``, with the stage's
fault spans); the unsynced dossiers by unit with their first codes; the
not-delivered codes. A stage without the keys (a run from before the two
systems, a real national portal that gives no receipt times) says
"unknown", never 0. Also here: the completion tile as citizens see it and
the sessions each system counted, which the page puts beside its own tiles.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
from matplotlib.axes import Axes

from ..shared.formats import number, percent
from ..shared.wards import units_by_code
from . import charts
from .data import StageData
from .style import figure, tile
from .units import tile_note

#: Codes listed in the report per list (the summary keeps up to 10,000).
SHOWN_CODES = 50


def _seconds(x: Any, unit: str = " s") -> str:
    if x is None:
        return "–"
    return (f"{float(x):,.2f}" if float(x) < 10 else f"{float(x):,.1f}") + unit


def completion_national_tile(stage: dict[str, Any], t: dict[str, str]) -> str:
    """Completion as citizens see it (national), beside the officers' (provincial); "unknown" without the key."""
    rate = stage.get("completion_rate_national")
    target = stage.get("completion_target")
    state = "" if rate is None or target is None else ("ok" if rate >= target else "bad")
    value = percent(rate) if "completion_rate_national" in stage and rate is not None else t["unknown"]
    under = t["completion_officers"].format(rate=percent(stage.get("completion_rate")))
    if rate is not None and (note := tile_note(stage, t, "completion_rate_national")):
        under = f"{note} · {under}"  # its own 95 % interval first, then the officers' rate
    return tile("completion_national", t["completion_national"], value, under, state)


def sessions_by_system_tile(stage: dict[str, Any], t: dict[str, str]) -> str:
    """The peak sessions each system counted itself ("unknown" for a single-portal run)."""
    by = (stage.get("sessions") or {}).get("by_system") or {}
    value = " · ".join(f"{name} {n:,}" for name, n in sorted(by.items(), key=lambda x: (-x[1], x[0]))) if by \
        else t["unknown"]
    return tile("sessions_by_system", t["sessions_by_system"], value, "")


def _count_tile(key: str, label: str, count: Any, under: str) -> str:
    if count is None:
        return tile(key, label, "–", under)
    return tile(key, label, f"{int(count):,}", under, "ok" if not count else "bad")


def lag_chart(stage: dict[str, Any], data: StageData, scale: float, labels: dict[str, str]) -> str:
    """p50 and p95 of the sync lag per interval, wall seconds, over simulated minutes."""
    def draw(ax: Axes) -> bool:
        series = pd.DataFrame((stage.get("sync") or {}).get("series") or [])
        if series.empty or "p95" not in series or series["p95"].isna().all():
            return False
        series = series[series["p95"].notna()]
        x = data.rel(series["t"]) * scale / 60.0
        ax.plot(x, series["p50"], color=charts.BLUE, marker=".", label="p50")
        ax.plot(x, series["p95"], color=charts.ORANGE, marker=".", label="p95")
        ax.set_ylabel("s")
        ax.set_ylim(bottom=0)
        return True
    return charts._time_chart(data, scale, labels, draw, height=2.4)


def backlog_chart(data: StageData, scale: float, labels: dict[str, str]) -> str:
    """Steps waiting in the provincial outbox, every 2 s sample."""
    def draw(ax: Axes) -> bool:
        ts = data.timeseries
        if ts.empty or "sync_backlog" not in ts or ts["sync_backlog"].isna().all():
            return False
        x = data.rel(ts["t"]) * scale / 60.0
        ax.fill_between(x, pd.to_numeric(ts["sync_backlog"], errors="coerce").fillna(0), step="post",
                        color=charts.PURPLE, alpha=0.35, label=labels["backlog"])
        ax.set_ylim(bottom=0)
        return True
    return charts._time_chart(data, scale, labels, draw, height=2.4)


def _unsynced_by_unit(stage: dict[str, Any], t: dict[str, str]) -> str:
    e = html.escape
    units = units_by_code()
    rows = sorted(((int(c), r) for c, r in (stage.get("unit_results") or {}).items() if r.get("unsynced")),
                  key=lambda cr: -int(cr[1]["unsynced"]))
    out = f"<h3>{t['unsynced_by_unit']}</h3>"
    if not rows:
        return out + f"<p class='muted'>{t['none']}</p>"
    body = "".join(
        f"<tr><td>{code} {e(units[code].name if code in units else '')}</td><td>{int(r['unsynced']):,}</td>"
        f"<td>{int(r.get('not_delivered') or 0):,}</td><td><code>{e(', '.join(r.get('unsynced_codes') or []))}"
        f"</code></td></tr>" for code, r in rows[:30])
    return out + (f"<div class='wrap'><table data-kpi='unsynced_units'><tr><th>{t['unit']}</th><th>{t['unsynced']}"
                  f"</th><th>{t['not_delivered']}</th><th>{t['codes']}</th></tr>{body}</table></div>")


def _codes(title: str, codes: list[str], total: Any, t: dict[str, str], key: str) -> str:
    e = html.escape
    if not total:
        return f"<h3>{title}</h3><p class='muted'>{t['none']}</p>"
    more = int(total) - min(len(codes), SHOWN_CODES)
    listed = ", ".join(codes[:SHOWN_CODES]) + (f" … (+{more:,})" if more > 0 else "")
    return f"<h3>{title} ({int(total):,})</h3><p data-kpi='{key}'><code>{e(listed)}</code></p>"


def sync_panel(stage: dict[str, Any], data: StageData | None, t: dict[str, str], scale: float, draw: bool) -> str:
    """The stage's sync panel (HTML); unknown when the stage has no ``sync`` (or it says unknown)."""
    e = html.escape
    sync = stage.get("sync")
    d = stage.get("dossiers") or {}
    out = [f"<h3>{t['sync_title']}</h3><div data-kpi='sync'>"]
    if not isinstance(sync, dict) or sync.get("unknown"):
        out.append(f"<p class='muted'>{e(t['sync_unknown'])}</p>")
        if isinstance(sync, dict) and sync.get("error"):
            out.append(f"<p class='fail'>{e(t['sync_error'].format(error=sync['error']))}</p>")
    lag = (sync or {}).get("lag_s") or {}
    known = isinstance(sync, dict) and not sync.get("unknown")
    tiles = [
        tile("sync_lag", t["sync_lag"], f"{_seconds(lag.get('p50'), '')} · {_seconds(lag.get('p95'))}" if known
                    else t["unknown"], f"{number(lag.get('count'))} {t['steps_matched']}" if known else ""),
        tile("sync_lag_max", t["sync_lag_max"], _seconds(lag.get("max")) if known else t["unknown"]),
        tile("sync_backlog", t["sync_backlog"],
                    f"{number((sync or {}).get('backlog_max'))} · {number((sync or {}).get('backlog_end'))}"),
        _count_tile("unsynced", t["unsynced"], d.get("unsynced"), t["unsynced_note"]),
        _count_tile("not_delivered", t["not_delivered"], d.get("not_delivered"), t["not_delivered_note"]),
        tile("link_restarts", t["link_restarts"], number((sync or {}).get("link_restarts"))),
    ]
    out.append(f"<div class='tiles'>{''.join(tiles)}</div><p class='muted'>{e(t['sync_basis'])}</p>")
    if draw and data is not None:
        labels = {**t, "cutover": t["cutover"]}
        out.append("<div class='charts'>")
        out.append(figure(lag_chart(stage, data, scale, labels), t["lag_over_time"]))
        out.append(figure(backlog_chart(data, scale, labels), t["backlog_over_time"]))
        out.append("</div>")
    if "unsynced" in d:
        out.append(_unsynced_by_unit(stage, t))
        out.append(_codes(t["not_delivered_list"], list(stage.get("not_delivered_codes") or []),
                          d.get("not_delivered"), t, "not_delivered_codes"))
    out.append("</div>")
    return "".join(out)

