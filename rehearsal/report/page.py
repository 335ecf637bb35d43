"""The run report, ``reports/<run>/index.html``: one self-contained page managers read at a glance.

Vietnamese by default, English with ``lang="en"`` (``rehearse report RUN_DIR
--lang en``). Everything is inside the one file (charts are PNG data URIs,
CSS inline, no script, no network), so it opens from disk or from a mail.

One source of truth: every number printed (verdicts, KPI tiles, gates,
units, funnel) comes from ``summary.json``; the charts draw the time course
from the files beside it (`rehearsal.report.data`). A run that crashed is
rebuilt from what is there and marked INCOMPLETE.

Layout, top to bottom: the verdict banner; for a plan of several stages, a
stage-by-stage comparison; then each stage: KPI tiles with their targets,
the gates, completion and sessions over time with the 96 % and 1,000 lines,
requests and failures per second, latency percentiles per request type, the
168 units as a heat grid grouped by former province with the worst units
first, the dossier funnel and time to complete per procedure group, the top
errors, and the cutover and fault markers. The page never scrolls sideways:
wide tables scroll inside their own box, charts shrink to the width.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..plan import DEFAULT_COMPLETION_TARGET
from ..results.gates import gate_status
from ..results.recover import recover_stages
from ..results.summary import read_summary_file
from ..shared.formats import millis as _ms
from ..shared.formats import number as _num
from ..shared.formats import percent
from . import charts
from .data import RunData, StageData, load_run
from .runbook import runbook_panel, runbook_reason_html
from .server_side import harness_banner, harness_flag, server_panel
from .style import CSS
from .style import figure as _figure
from .style import tile as _tile
from .sync import completion_national_tile, sessions_by_system_tile, sync_panel
from .text import LANGS, TEXT
from .units import few_dossiers_banner, few_dossiers_note, few_flag, rate_html, tile_note, unit_grid, worst_units


def _gate_for(stage: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """The stage's plain gate on `metric` (whole stage, no filter, a fixed number), for its KPI tile."""
    plain = re.compile(re.escape(metric) + r"\s*(<=|>=|==|!=|<|>)\s*[0-9.]+%?")
    for g in stage.get("gates", []):
        if plain.fullmatch(g["expr"].strip()):
            return g
    return None


def _state(gate: dict[str, Any] | None, ok: bool | None = None) -> str:
    if gate is not None and gate.get("passed") is not None:
        return "ok" if gate["passed"] else "bad"
    if ok is None:
        return ""
    return "ok" if ok else "bad"


def _kpis(stage: dict[str, Any], t: dict[str, str]) -> str:
    d, s = stage["dossiers"], stage["sessions"]
    total = stage.get("requests_total") or {}
    target = stage.get("completion_target")
    p95_gate = _gate_for(stage, "p95_ms")
    err_gate = _gate_for(stage, "error_rate")
    sess_gate = _gate_for(stage, "sessions_peak_portal") or _gate_for(stage, "sessions_peak_harness")
    tiles = [
        _tile("completion_rate", t["completion"], percent(stage["completion_rate"]),
              " · ".join(x for x in (f"{t['target_short']} ≥ {percent(target)}", tile_note(stage, t)) if x),
              _state(_gate_for(stage, "completion_rate"),
                     None if target is None else stage["completion_rate"] >= target)),
        _tile("on_time_rate", t["on_time"], percent(stage.get("on_time_rate")), "", _state(_gate_for(stage, "on_time_rate"))),
        _tile("sessions", t["sessions"], f"{s['peak_harness']:,} · {s['peak_portal']:,}",
              f"{t['target_short']} {sess_gate['expr'].split('_', 2)[2].split(' ', 1)[1]}" if sess_gate else "",
              _state(sess_gate)),
        _tile("p95_ms", t["p95"], _ms(total.get("p95_ms")),
              f"{t['target_short']} {p95_gate['expr'].split('p95_ms', 1)[1].strip()}" if p95_gate else "",
              _state(p95_gate)),
        _tile("error_rate", t["errors"], percent(stage.get("error_rate")),
              f"{t['target_short']} {err_gate['expr'].split('error_rate', 1)[1].strip()}" if err_gate else "",
              _state(err_gate)),
        _tile("lost", t["lost"], f"{d['lost']:,}", f"{t['target_short']} 0", _state(None, d["lost"] == 0)),
        _tile("dossiers", t["dossiers"], f"{d['submitted']:,} · {d['complete']:,}"),
        _tile("duplicated", t["duplicated"], f"{d['duplicated']:,}", f"{t['target_short']} 0",
              _state(None, d["duplicated"] == 0)),
    ]
    if "withdrawn" in d:  # stopped at the citizen's request: counted apart, out of the completion rate
        tiles.insert(7, _tile("withdrawn", t["withdrawn"], f"{d['withdrawn']:,}", t["withdrawn_note"]))
    # Two systems: completion as citizens see it beside the officers', and each system's own session count.
    tiles.insert(1, completion_national_tile(stage, t))
    tiles.insert(4, sessions_by_system_tile(stage, t))
    return f"<div class='tiles'>{''.join(tiles)}</div>"


def _gates(stage: dict[str, Any], t: dict[str, str], title: str | None = None) -> str:
    """The gates table: each gate, what was observed, what was expected (and from which window), the result."""
    e = html.escape
    if not stage.get("gates"):
        return ""
    rows = []
    for g in stage["gates"]:
        status = gate_status(g)
        label = {"passed": t["pass"], "failed": t["fail"], "skipped": t["skip"]}[status]
        css = {"passed": "pass", "failed": "fail", "skipped": "muted"}[status]
        named = g["name"] != g["expr"]
        expected = e(g.get("expected") or "") + (f" <span class='muted'>({e(g['detail'])})</span>"
                                                  if g.get("detail") else "")
        if g.get("starved_s"):  # judged on a window in which the harness was starved: still the result, flagged
            label = f"{label} <span title='{e(t['starved_gate'])}' data-kpi='starved-gate'>⚠</span>"
        label += few_flag(g, t)  # passed on too few dossiers to be sure
        label += harness_flag(g, t)  # judged on a span whose latency is mostly the harness's own
        rows.append(f"<tr><td>{e(g['name']) + ' — ' if named else ''}<code>{e(g['expr'])}</code></td>"
                    f"<td>{_num(g['observed'])}</td><td>{expected}</td><td class='{css}'>{label}</td></tr>")
    return (f"<h3>{title or t['gates']}</h3><div class='wrap'><table><tr><th>{t['gate']}</th>"
            f"<th>{t['observed']}</th><th>{t['expected']}</th><th>{t['result']}</th></tr>{''.join(rows)}"
            f"</table></div>")


def _top_errors(data: StageData | None, t: dict[str, str], limit: int = 10) -> str:
    e = html.escape
    out = [f"<h3>{t['top_errors']}</h3>"]
    f = data.failures if data is not None else None
    if f is None or f.empty:
        return "".join(out) + f"<p class='muted'>{t['no_errors']}</p>"
    f = f.sort_values("Occurrences", ascending=False).head(limit)
    rows = [f"<tr><td>{e(str(r['Method']))} {e(str(r['Name']))}</td><td>{e(str(r['Error'])[:160])}</td>"
            f"<td>{int(r['Occurrences']):,}</td></tr>" for _, r in f.iterrows()]
    return "".join(out) + (f"<div class='wrap'><table><tr><th>{t['request']}</th><th>{t['error']}</th>"
                           f"<th>{t['count']}</th></tr>{''.join(rows)}</table></div>")


def _cutover_and_markers(stage: dict[str, Any], t: dict[str, str]) -> str:
    e = html.escape
    out = []
    cut = stage.get("cutover")
    if cut:
        figures = [
            (t["open_at_close"], _num(cut.get("open_at_close"))),
            (t["found"], percent(cut.get("migration_found_rate"))),
            (t["migration"], "–" if cut.get("migration_s") is None else f"{cut['migration_s']:.2f} s"),
            (t["interruption"], "–" if cut.get("interruption_s") is None
             else f"{cut['interruption_s']:.2f} s ({cut.get('interruption_failures', 0)})"),
            (t["sessions_back"], f"{cut.get('sessions_lost', 0):,} · {cut.get('sessions_restored', 0):,}"),
        ]
        out.append(f"<h3>{t['cutover_title']}</h3><div class='tiles'>")
        out += [_tile("cutover", k, v) for k, v in figures]
        out.append("</div>")
        if cut.get("error"):
            out.append(f"<p class='fail'>{e(cut['error'])}</p>")
    markers = stage.get("markers") or []
    if markers:
        t0 = markers[0]["t"]
        out.append(f"<h3>{t['markers']}</h3><div class='wrap'><table><tr><th>{t['marker']}</th><th>{t['name']}</th>"
                   f"<th>{t['minute']}</th><th>+ s</th></tr>")
        for m in markers:
            sim = m.get("sim_s")
            out.append(f"<tr><td>{e(t.get(m['kind'], m['kind']))}</td><td>{e(str(m.get('name', '')))}</td>"
                       f"<td>{'–' if sim is None else f'{sim / 60:.0f}'}</td><td>{m['t'] - t0:.1f}</td></tr>")
        out.append("</table></div>")
    return "".join(out)


def _requests(stage: dict[str, Any], t: dict[str, str]) -> str:
    e = html.escape
    rows = [f"<tr><td>{e(name)}</td><td>{r['count']:,}</td><td>{r['failures']:,}</td><td>{_ms(r['p50_ms'])}</td>"
            f"<td>{_ms(r['p95_ms'])}</td><td>{_ms(r['p99_ms'])}</td></tr>"
            for name, r in sorted(stage.get("requests", {}).items())]
    return (f"<details><summary>{t['requests']} ({len(rows)})</summary><div class='wrap'><table><tr>"
            f"<th>{t['request']}</th><th>n</th><th>{t['failures']}</th><th>p50</th><th>p95</th><th>p99</th></tr>"
            f"{''.join(rows)}</table></div></details>")


def _starved(starved: dict[str, Any], t: dict[str, str], limit: int = 10) -> str:
    """The stage's starved windows: what they mean, then the longest of them (UTC, seconds, why)."""
    e = html.escape
    windows = sorted(starved.get("windows") or [], key=lambda w: -w["seconds"])[:limit]
    items = "".join(f"<li>{_utc(w['from'])}–{_utc(w['to'])} UTC ({w['seconds']:g} s): {e(str(w.get('why', '')))}</li>"
                    for w in sorted(windows, key=lambda w: w["from"]))
    text = t["starved"].format(seconds=_num(starved["seconds"]), share=percent(starved.get("share")))
    return f"<div data-kpi='starved'><p class='fail'>{e(text)}</p><ul class='muted'>{items}</ul></div>"


def _utc(t: float) -> str:
    return datetime.fromtimestamp(float(t), timezone.utc).strftime("%H:%M:%S")


def _stage_html(stage: dict[str, Any], data: StageData | None, t: dict[str, str], scale: float,
                draw: bool = True) -> str:
    e = html.escape
    out = [f"<h2 id='stage-{e(stage['name'])}'>{e(stage['name'])} <span class='verdict {e(stage['verdict'])}'>"
           f"{e(stage['verdict'])}</span> <span class='muted'>{stage['units']} {t['units']}</span></h2>",
           runbook_reason_html(stage, t), _kpis(stage, t), few_dossiers_note(stage, t), _gates(stage, t),
           _cutover_and_markers(stage, t), runbook_panel(stage, t, draw)]  # the runbook: planned against actual
    if stage.get("reconciled") is False:
        out.insert(1, f"<p class='fail'>{t['not_reconciled']}</p>")
    if stage.get("aborted"):
        ab = stage["aborted"]
        out.insert(1, f"<p class='fail' data-kpi='aborted'>"
                      f"{e(t['aborted'].format(at=round((ab.get('at_s') or 0) / 60), gate=ab.get('gate')))}</p>")
    if (stage.get("starved") or {}).get("seconds"):
        out.insert(1, _starved(stage["starved"], t))
    labels = {**t, "completion": t["completion"], "cutover": t["cutover"]}
    if draw and data is not None:
        target = stage.get("completion_target") or DEFAULT_COMPLETION_TARGET
        out.append(f"<h3>{t['over_time']}</h3><div class='charts'>")
        band = stage.get("completion_over_time")  # the rate's 95 % interval as it went
        out.append(_figure(charts.completion_chart(data, scale, target, labels, band), t["completion_over_time"]))
        out.append(_figure(charts.sessions_chart(data, scale, labels), t["sessions_over_time"]))
        out.append(_figure(charts.throughput_chart(data, scale, labels), t["throughput"]))
        out.append(_figure(charts.latency_chart(data, scale, labels), t["latency"]))
        out.append("</div>")
    out.append(server_panel(stage, data, t, scale, draw))  # client and server latency side by side
    out.append(sync_panel(stage, data, t, scale, draw))
    out.append(unit_grid(stage, t))
    out.append(worst_units(stage, t, scale))
    if draw and data is not None:
        out.append("<div class='charts'>")
        out.append(_figure(charts.funnel_chart(stage["dossiers"].get("by_status", {}), labels), t["funnel"]))
        out.append(_figure(charts.completion_time_chart(data, labels), t["ttc"]))
        out.append("</div>")
    out.append(_top_errors(data, t))
    out.append(_requests(stage, t))
    return "".join(out)


def _sync_p95(stage: dict[str, Any]) -> str:
    """The stage's sync lag p95 for the comparison table ("–" when unknown)."""
    sync = stage.get("sync") or {}
    p95 = None if sync.get("unknown") else (sync.get("lag_s") or {}).get("p95")
    return "–" if p95 is None else f"{p95:,.2f} s"


def _comparison(stages: list[dict[str, Any]], t: dict[str, str], draw: bool) -> str:
    e = html.escape
    rows = []
    for s in stages:
        total = s.get("requests_total") or {}
        rows.append(f"<tr><td><a href='#stage-{e(s['name'])}'>{e(s['name'])}</a></td>"
                    f"<td><span class='verdict {e(s['verdict'])}'>{e(s['verdict'])}</span></td><td>{s['units']}</td>"
                    f"<td>{rate_html(s)}</td><td>{s['sessions']['peak_harness']:,} · "
                    f"{s['sessions']['peak_portal']:,}</td><td>{_ms(total.get('p95_ms'))}</td>"
                    f"<td>{percent(s.get('error_rate'))}</td><td>{s['dossiers']['lost']:,}</td>"
                    f"<td>{_num(s['dossiers'].get('unsynced'))}</td><td>{_sync_p95(s)}</td></tr>")
    out = [f"<h2>{t['stages']}</h2><div class='wrap'><table class='stages'><tr><th>{t['stage']}</th>"
           f"<th>{t['verdict']}</th><th>{t['units']}</th><th>{t['completion']}</th><th>{t['sessions']}</th>"
           f"<th>p95</th><th>{t['errors']}</th><th>{t['lost']}</th><th>{t['unsynced']}</th>"
           f"<th>{t['sync_p95']}</th></tr>{''.join(rows)}</table></div>"]
    if draw:
        out.append("<div class='narrow'>" + _figure(charts.stages_chart(stages, t), t["stages"]) + "</div>")
    return "".join(out)


def render(summary: dict[str, Any], data: RunData | None = None, lang: str = "vi") -> str:
    """The page for `summary`; with `data` (the run's time course) the charts too."""
    if lang not in LANGS:
        raise RunError(f"unknown report language {lang!r} (expected one of: {', '.join(LANGS)})")
    t = TEXT[lang]
    e = html.escape
    verdict = summary["verdict"]
    scale = float(summary.get("time_scale") or 1.0)
    stages = summary.get("stages", [])
    draw = data is not None
    head = (f"<h1>{t['title']} — {e(summary['scenario'])}</h1>"
            f"<div class='banner {e(verdict)}' data-kpi='verdict'><b>{e(verdict)}</b>"
            f"<span>{len(stages)} {t['stage']} · {t['run']} {e(summary['run_id'])} · "
            f"{e(str(summary['started_at']))} → {e(str(summary.get('finished_at') or '…'))} · "
            f"{t['scale']} ×{scale:g} · {t['target']} {e(str(summary['target']))}</span></div>")
    body = [head]
    starved_s = round(sum(float((s.get("starved") or {}).get("seconds") or 0) for s in stages), 1)
    if starved_s:  # under the verdict: the verdict stands, but what it was measured on is in doubt
        body.append(f"<div class='banner' style='background:#9a6700' data-kpi='starved-run'><b>⚠</b>"
                    f"<span>{e(t['starved_run'].format(seconds=_num(starved_s)))}</span></div>")
    body.append(harness_banner(stages, t))  # as for a starved harness: the verdict stands, its latency is ours
    body.append(few_dossiers_banner(summary, t))  # a GO that rests on too few dossiers
    if verdict == "INCOMPLETE":
        body.append(f"<p class='fail'>{t['incomplete']}</p>")
    for err in summary.get("errors", []):
        body.append(f"<p class='fail'>{e(err)}</p>")
    if summary.get("not_run"):
        body.append(f"<p class='fail'>{e(t['not_run'].format(names=', '.join(summary['not_run'])))}</p>")
    if summary.get("gates"):
        body.append(_gates(summary, t, t["run_gates"]))
    if len(stages) > 1:
        body.append(_comparison(stages, t, draw))
    body += [_stage_html(s, data.stages.get(s["name"]) if data else None, t, scale, draw) for s in stages]
    body.append(f"<p class='muted'>{t['generated']} summary.json · dvc-rehearsal {e(str(summary.get('harness_version', '')))}</p>")
    return (f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{e(summary['scenario'])} — {e(verdict)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>")


def build_report(run_dir: Path, lang: str = "vi", out: Path | None = None) -> Path:
    """(Re)build ``index.html`` (``index.en.html`` for English) of a run directory."""
    run_dir = Path(run_dir)
    summary = recover_stages(run_dir, read_summary_file(run_dir))
    page = render(summary, load_run(run_dir, summary), lang)
    out = out or run_dir / ("index.html" if lang == "vi" else f"index.{lang}.html")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
