"""The report's completion rates with their uncertainty: the 168-unit heat grid, the worst units, the warnings.

Every rate printed here comes with its 95 % Wilson interval from
``summary.json`` (`rehearsal.results.completion`: ``<key>_lower`` /
``<key>_upper`` / ``<key>_n`` beside each rate). A unit whose interval is wider
than `WIDE_INTERVAL` (stated in the grid's legend) is hatched and outlined in
the grid: its colour rests on too few dossiers. A stage, unit or completion gate
that meets its target on such an interval is named in a warning under the
stage's tiles; a GO that rests on one (the stage's own rate, or a completion
gate that passed: ``few_dossiers`` in its record) says so under the verdict. A summary from
before the intervals has no bounds: nothing is marked, the rates print as before.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from ..plan import DEFAULT_COMPLETION_TARGET
from ..results.completion import WIDE_INTERVAL, interval_text, is_wide
from ..shared.formats import percent
from ..shared.wards import FormerProvince, load_units

#: Units a warning names before "+N more".
NAMED_UNITS = 8


def interval_of(row: Mapping[str, Any], key: str = "completion_rate") -> str:
    """``94.4–97.8%`` for a rate of `row` ("" when the summary has no bounds for it)."""
    return interval_text(row.get(f"{key}_lower"), row.get(f"{key}_upper"))


def rate_html(row: Mapping[str, Any], key: str = "completion_rate") -> str:
    """The rate, then its interval small and grey: ``96.4% (94.4–97.8%)``."""
    span = interval_of(row, key)
    return html.escape(percent(row.get(key))) + (f" <span class='muted ci'>({span})</span>" if span else "")


def tile_note(row: Mapping[str, Any], t: dict[str, str], key: str = "completion_rate") -> str:
    """A tile's line about its interval: ``95 %: 94.4–97.8% · n 503`` ("" without bounds)."""
    span = interval_of(row, key)
    return f"{t['ci95']}: {span} · n {int(row.get(f'{key}_n') or 0):,}" if span else ""


def _passes_thin(row: Mapping[str, Any], target: float) -> bool:
    rate = row.get("completion_rate")
    return rate is not None and rate >= target and is_wide(row)


def _go_rests_on_few(stage: dict[str, Any]) -> bool:
    """The stage's own rate meets its target on a wide interval, or a completion gate passed on one."""
    return _passes_thin(stage, float(stage.get("completion_target") or DEFAULT_COMPLETION_TARGET)) or any(
        g.get("few_dossiers") for g in stage.get("gates") or ())


def few_flag(gate: Mapping[str, Any], t: dict[str, str]) -> str:
    """A ⚠ after a gate's result when it passed on too few dossiers ("" otherwise)."""
    if not gate.get("few_dossiers"):
        return ""
    return f" <span title='{html.escape(t['few_short'])}' data-kpi='few-dossiers-gate'>⚠</span>"


def few_dossiers_note(stage: dict[str, Any], t: dict[str, str]) -> str:
    """Under a stage's tiles: the stage, gates and units that meet the target on too few dossiers ("" when none)."""
    e = html.escape
    target = float(stage.get("completion_target") or DEFAULT_COMPLETION_TARGET)
    lines = [f"{g['name']}: {g.get('detail', '')}" for g in stage.get("gates") or () if g.get("few_dossiers")]
    if _passes_thin(stage, target):
        lines.append(t["few_stage"].format(rate=percent(stage.get("completion_rate")), n=stage.get("completion_rate_n"),
                                           span=interval_of(stage)))
    units = stage.get("units_few_dossiers") or []
    if units:
        results = stage.get("unit_results") or {}
        names = {u.code: u.name for u in load_units()}
        rows = [(c, results.get(str(c), {})) for c in units[:NAMED_UNITS]]
        named = ", ".join(f"{c} {names.get(int(c), '')} {percent(r.get('completion_rate'))} {t['of']} "
                          f"{r.get('completion_rate_n', 0)}" for c, r in rows)
        more = f" +{len(units) - NAMED_UNITS}" if len(units) > NAMED_UNITS else ""
        lines.append(t["few_units"].format(count=len(units), names=named + more))
    if not lines:
        return ""
    head = t["few_go"] if stage.get("verdict") == "GO" and _go_rests_on_few(stage) else t["few_pass"]
    width = f"{100 * WIDE_INTERVAL:g}"
    return (f"<div class='few' data-kpi='few-dossiers'><b>⚠ {e(head.format(width=width))}</b>"
            f"<ul>{''.join(f'<li>{e(x)}</li>' for x in lines)}</ul></div>")


def few_dossiers_banner(summary: dict[str, Any], t: dict[str, str]) -> str:
    """Under the verdict: a GO stage that rests on too few dossiers ("" when none)."""
    thin = [s["name"] for s in summary.get("stages", []) if s.get("verdict") == "GO" and _go_rests_on_few(s)]
    if not thin:
        return ""
    text = t["few_banner"].format(width=f"{100 * WIDE_INTERVAL:g}", names=", ".join(thin))
    return (f"<div class='banner' style='background:#9a6700' data-kpi='few-dossiers-run'><b>⚠</b>"
            f"<span>{html.escape(text)}</span></div>")


def _unit_class(rate: float | None, submitted: int, in_stage: bool, target: float) -> int:
    if not in_stage:
        return 4
    if not submitted or rate is None:
        return 3
    if rate >= target:
        return 0
    return 1 if rate >= target - 0.10 else 2


def _group_line(stage: dict[str, Any], province: FormerProvince, count: int, t: dict[str, str]) -> str:
    """``old HCMC — 102 units · 97.1% (96.0–98.0%) of 1,234`` (the rate only when the summary has it)."""
    e = html.escape
    g = (stage.get("completion_by_group") or {}).get(province.value)
    head = f"{e(t[province.value])} — {count} {t['units']}"
    if not g or g.get("completion_rate") is None:
        return head
    return f"{head} · {rate_html(g)} {t['of']} {int(g.get('completion_rate_n') or 0):,}"


def unit_grid(stage: dict[str, Any], t: dict[str, str]) -> str:
    """All 168 units by former province, coloured against the target; wide intervals hatched and outlined."""
    e = html.escape
    results = stage.get("unit_results", {})
    # `unit_codes` says which units took part; an older summary without it: those with results, or all 168.
    codes = stage.get("unit_codes")
    in_stage = set(codes) if codes else ({int(c) for c in results} if stage.get("units") != 168 else None)
    target = stage.get("completion_target") or DEFAULT_COMPLETION_TARGET
    out = [f"<h3>{t['unit_grid']}</h3>"]
    units = load_units()
    for province in FormerProvince:
        cells = []
        group = [u for u in units if u.former_province == province]
        for u in group:
            r = results.get(str(u.code), {})
            sub, done, rate = r.get("submitted", 0), r.get("complete", 0), r.get("completion_rate")
            withdrawn = r.get("withdrawn", 0)  # out of the rate's count: done / (sub - withdrawn)
            taking_part = in_stage is None or u.code in in_stage
            cls = _unit_class(rate, sub, taking_part, target)
            wide = sub and taking_part and is_wide(r)
            span = interval_of(r)
            tip = (f"{u.code} {u.name}: {done}/{sub - withdrawn} {percent(rate)}"
                   + (f" ({t['ci95']} {span})" if span else "") + (f" · {t['few_short']}" if wide else "")
                   + (f" · {t['withdrawn_short']} {withdrawn}" if withdrawn else "") if sub
                   else f"{u.code} {u.name}: {t['no_dossiers'] if taking_part else t['not_in_stage']}")
            label = "" if rate is None else f"{math.floor(rate * 100 + 1e-9):.0f}"
            cells.append(f"<div class='cell c{cls}{' wide' if wide else ''}' title='{e(tip)}' data-unit='{u.code}'"
                         f"{' data-wide=1' if wide else ''}>{label}</div>")
        out.append(f"<div class='muted'>{_group_line(stage, province, len(group), t)}</div>"
                   f"<div class='grid'>{''.join(cells)}</div>")
    legend = t["legend"].split(" · ")
    out.append("<div class='legend'>" + "".join(f"<i class='c{i}'></i>{e(x)}" for i, x in enumerate(legend))
               + f"<i class='c0 wide'></i>{e(t['legend_wide'].format(width=f'{100 * WIDE_INTERVAL:g}'))}</div>")
    return "".join(out)


def worst_units(stage: dict[str, Any], t: dict[str, str], scale: float, limit: int = 20) -> str:
    """The worst units first (lowest rate, then most dossiers), each rate with its interval."""
    e = html.escape
    names = {u.code: u.name for u in load_units()}
    rows = sorted(((int(c), r) for c, r in stage.get("unit_results", {}).items() if r.get("submitted")),
                  key=lambda cr: (cr[1]["completion_rate"] if cr[1]["completion_rate"] is not None else 2.0,
                                  -cr[1]["submitted"]))
    body = []
    for code, r in rows[:limit]:
        med = r.get("median_complete_s")
        med_txt = "–" if med is None else f"{med * scale / 60:,.0f} min"
        span = interval_of(r)
        mark = f" <span title='{e(t['few_short'])}'>⚠</span>" if is_wide(r) else ""
        body.append(f"<tr><td>{code} {e(names.get(code, ''))}</td><td>{r['submitted']:,}</td><td>{r['complete']:,}</td>"
                    f"<td>{r.get('withdrawn', 0):,}</td><td>{percent(r['completion_rate'])}</td>"
                    f"<td class='ci'>{span or '–'}{mark}</td><td>{med_txt}</td></tr>")
    return (f"<h3>{t['worst']}</h3><div class='wrap'><table class='worst'><tr><th>{t['unit']}</th>"
            f"<th>{t['submitted']}</th><th>{t['complete']}</th><th>{t['withdrawn_short']}</th><th>{t['rate']}</th>"
            f"<th>{t['ci95']}</th><th>{t['median_ttc']}</th></tr>"
            f"{''.join(body)}</table></div>")
