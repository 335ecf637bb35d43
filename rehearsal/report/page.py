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
import math
import re
from pathlib import Path
from typing import Any

from . import charts
from ..errors import RunError
from .data import RunData, StageData, load_run
from ..shared.wards import FormerProvince, load_units

LANGS = ("vi", "en")

TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Diễn tập chuyển đổi", "run": "lần chạy", "scale": "tỷ lệ thời gian", "target": "đích",
        "incomplete": "Lần chạy chưa hoàn tất (INCOMPLETE): số liệu dưới đây là những gì đã đo được.",
        "stages": "So sánh các giai đoạn", "stage": "giai đoạn", "units": "đơn vị", "verdict": "kết luận",
        "completion": "Tỷ lệ hồ sơ hoàn thành", "on_time": "Đúng hạn", "sessions": "Phiên đồng thời (harness · cổng)",
        "sessions_portal_peak": "Phiên đồng thời cao nhất (cổng)", "p95": "Độ trễ p95", "errors": "Tỷ lệ lỗi",
        "lost": "Hồ sơ thất lạc", "dossiers": "Hồ sơ (nộp · xong)", "duplicated": "Trùng",
        "target_short": "mục tiêu", "gates": "Ngưỡng", "gate": "ngưỡng", "observed": "đo được", "result": "kết quả",
        "pass": "đạt", "fail": "không đạt", "over_time": "Theo thời gian",
        "completion_over_time": "Tỷ lệ hoàn thành theo thời gian", "sessions_over_time": "Phiên đồng thời",
        "throughput": "Yêu cầu và lỗi mỗi giây", "latency": "Độ trễ theo loại yêu cầu (p50 / p95 / p99)",
        "unit_grid": "168 đơn vị — tỷ lệ hoàn thành", "worst": "Đơn vị chậm nhất",
        "unit": "đơn vị", "submitted": "nộp", "complete": "xong", "rate": "tỷ lệ",
        "median_ttc": "trung vị thời gian xử lý", "funnel": "Phễu hồ sơ", "ttc": "Thời gian hoàn thành theo nhóm thủ tục",
        "top_errors": "Lỗi thường gặp", "error": "lỗi", "count": "số lần", "requests": "Yêu cầu",
        "request": "yêu cầu", "failures": "lỗi", "no_errors": "Không có lỗi.", "not_in_stage": "không tham gia",
        "no_dossiers": "chưa có hồ sơ", "cutover": "chuyển đổi", "markers": "Mốc thời gian",
        "no_data": "chưa có dữ liệu", "sim_minutes": "phút (thời gian mô phỏng)", "ttc_minutes": "phút (mô phỏng)",
        "harness": "harness", "portal": "cổng", "rps": "yêu cầu/giây", "fail_per_s": "lỗi/giây",
        "step_submitted": "đã nộp", "step_received": "đã tiếp nhận", "step_processing": "đang/đã xử lý",
        "step_decided": "đã có kết quả", "step_returned": "đã trả kết quả",
        "hcmc": "TP.HCM cũ", "binh-duong": "Bình Dương cũ", "ba-ria-vung-tau": "Bà Rịa – Vũng Tàu cũ",
        "legend": "≥ mục tiêu · < mục tiêu · < mục tiêu − 10 điểm · chưa có hồ sơ · không tham gia",
        "cutover_title": "Chuyển đổi cổng", "open_at_close": "Hồ sơ đang xử lý lúc đóng",
        "found": "Tìm thấy trên cổng quốc gia", "migration": "Thời gian chuyển hồ sơ", "interruption": "Gián đoạn",
        "sessions_back": "Phiên mất · lập lại", "marker": "mốc", "name": "tên", "minute": "phút (mô phỏng)",
        "fault_start": "bắt đầu sự cố", "fault_end": "hết sự cố", "cutover_close": "đóng cổng cũ",
        "migration_done": "chuyển hồ sơ xong", "control_error": "lỗi điều khiển", "generated": "Tạo từ",
        "not_reconciled": "Giai đoạn bị dừng giữa chừng: số liệu lấy từ sổ ghi (ledger), chưa đối soát với cổng.",
        "expected": "yêu cầu", "skip": "bỏ qua", "abort": "dừng sớm", "run_gates": "Ngưỡng cho cả lần chạy",
        "aborted": "Giai đoạn bị dừng sớm ở phút {at} (mô phỏng) vì không đạt ngưỡng “{gate}”.",
        "not_run": "Không chạy (giai đoạn trước bị dừng sớm): {names}.", "baseline": "so với mốc chuẩn",
    },
    "en": {
        "title": "Cutover rehearsal", "run": "run", "scale": "time scale", "target": "target",
        "incomplete": "The run did not complete (INCOMPLETE): below is what was measured.",
        "stages": "Stage by stage", "stage": "stage", "units": "units", "verdict": "verdict",
        "completion": "Completion rate", "on_time": "On time", "sessions": "Concurrent sessions (harness · portal)",
        "sessions_portal_peak": "Peak concurrent sessions (portal)", "p95": "p95 latency", "errors": "Error rate",
        "lost": "Lost dossiers", "dossiers": "Dossiers (submitted · complete)", "duplicated": "Duplicated",
        "target_short": "target", "gates": "Gates", "gate": "gate", "observed": "observed", "result": "result",
        "pass": "pass", "fail": "FAIL", "over_time": "Over time",
        "completion_over_time": "Completion rate over time", "sessions_over_time": "Concurrent sessions",
        "throughput": "Requests and failures per second", "latency": "Latency by request type (p50 / p95 / p99)",
        "unit_grid": "All 168 units — completion rate", "worst": "Worst units first",
        "unit": "unit", "submitted": "submitted", "complete": "complete", "rate": "rate",
        "median_ttc": "median time to complete", "funnel": "Dossier funnel", "ttc": "Time to complete by procedure group",
        "top_errors": "Top errors", "error": "error", "count": "count", "requests": "Requests",
        "request": "request", "failures": "failures", "no_errors": "No errors.", "not_in_stage": "not in stage",
        "no_dossiers": "no dossiers", "cutover": "cutover", "markers": "Markers",
        "no_data": "no data yet", "sim_minutes": "minutes (simulated time)", "ttc_minutes": "minutes (simulated)",
        "harness": "harness", "portal": "portal", "rps": "requests/s", "fail_per_s": "failures/s",
        "step_submitted": "submitted", "step_received": "received", "step_processing": "processing",
        "step_decided": "decided", "step_returned": "returned",
        "hcmc": "old HCMC", "binh-duong": "old Bình Dương", "ba-ria-vung-tau": "old Bà Rịa – Vũng Tàu",
        "legend": "≥ target · < target · < target − 10 points · no dossiers · not in stage",
        "cutover_title": "Portal cutover", "open_at_close": "Open dossiers at close",
        "found": "Found on the national portal", "migration": "Migration time", "interruption": "Interruption",
        "sessions_back": "Sessions lost · back", "marker": "marker", "name": "name", "minute": "minute (simulated)",
        "fault_start": "fault on", "fault_end": "fault off", "cutover_close": "legacy portal closed",
        "migration_done": "migration done", "control_error": "control error", "generated": "Built from",
        "not_reconciled": "Stage cut short: figures from the ledger, not reconciled with the portal.",
        "expected": "expected", "skip": "skipped", "abort": "stopped early", "run_gates": "Gates on the whole run",
        "aborted": "Stage stopped early at minute {at} (simulated): gate “{gate}” failed.",
        "not_run": "Not run (an earlier stage was aborted): {names}.", "baseline": "against baseline",
    },
}

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:0;padding:12px;color:#1b1f23;
max-width:1180px;overflow-wrap:anywhere}
h1{font-size:1.35rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .4rem;border-top:2px solid #d0d7de;padding-top:.8rem}
h3{font-size:1rem;margin:1.1rem 0 .4rem}
.banner{display:flex;flex-wrap:wrap;align-items:center;gap:.6rem;padding:.6rem .8rem;border-radius:.4rem;color:#fff}
.banner b{font-size:1.6rem}.banner span{opacity:.95}
.verdict{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;font-weight:700;font-size:.9em}
.GO{background:#1a7f37}.NO-GO{background:#cf222e}.INCOMPLETE{background:#9a6700}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:.5rem}
.tile{border:1px solid #d0d7de;border-left:5px solid #6e7781;border-radius:.4rem;padding:.45rem .6rem}
.tile.ok{border-left-color:#1a7f37}.tile.bad{border-left-color:#cf222e}
.tile .k{font-size:.8rem;color:#57606a}.tile b{display:block;font-size:1.3rem}.tile .t{font-size:.75rem;color:#57606a}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{border-bottom:1px solid #d0d7de;padding:.25rem .4rem;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;white-space:normal}
.wrap{overflow-x:auto;max-width:100%}
.fail{color:#cf222e;font-weight:600}.pass{color:#1a7f37}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:.6rem}
figure{margin:0}figure img{width:100%;height:auto;display:block}figcaption{font-size:.85rem;font-weight:600;margin:.2rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(30px,1fr));gap:3px;margin-bottom:.6rem}
.cell{aspect-ratio:1;border-radius:3px;font-size:9px;line-height:1;display:flex;align-items:center;justify-content:center;
color:#fff;overflow:hidden}
.c0{background:#1a7f37}.c1{background:#d97706}.c2{background:#cf222e}.c3{background:#d0d7de;color:#57606a}
.c4{background:#f6f8fa;color:#afb8c1;border:1px dashed #d0d7de}
.legend{font-size:.8rem;color:#57606a}.legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;
vertical-align:middle;margin:0 .2rem 0 .5rem}
details summary{cursor:pointer;font-weight:600;margin:.6rem 0}
.muted{color:#57606a;font-size:.85rem}
.narrow{max-width:760px}
"""


def percent(x: float | None) -> str:
    """A rate as a percentage, rounded *down* to 0.1 %: 4,785 of 4,786 is 99.9 %, never 100.0 %."""
    if x is None:
        return "–"
    return f"{math.floor(x * 1000 + 1e-9) / 10:.1f}%"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f} ms"


def _num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.4g}"
    return f"{int(x):,}"


def _gate_for(stage: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """The stage's plain gate on `metric` (whole stage, no filter, a fixed number), for its KPI tile."""
    plain = re.compile(re.escape(metric) + r"\s*(<=|>=|==|!=|<|>)\s*[0-9.]+%?")
    for g in stage.get("gates", []):
        if plain.fullmatch(g["expr"].strip()):
            return g
    return None


def _tile(key: str, label: str, value: str, target: str = "", state: str = "") -> str:
    e = html.escape
    return (f"<div class='tile {state}' data-kpi='{e(key)}'><div class='k'>{e(label)}</div><b>{e(value)}</b>"
            f"<div class='t'>{e(target)}</div></div>")


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
              f"{t['target_short']} ≥ {percent(target)}",
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
    return f"<div class='tiles'>{''.join(tiles)}</div>"


def _gates(stage: dict[str, Any], t: dict[str, str], title: str | None = None) -> str:
    """The gates table: each gate, what was observed, what was expected (and from which window), the result."""
    e = html.escape
    if not stage.get("gates"):
        return ""
    rows = []
    for g in stage["gates"]:
        status = g.get("status") or ("passed" if g["passed"] else "failed")
        label = {"passed": t["pass"], "failed": t["fail"], "skipped": t["skip"]}[status]
        css = {"passed": "pass", "failed": "fail", "skipped": "muted"}[status]
        named = g["name"] != g["expr"]
        expected = e(g.get("expected") or "") + (f" <span class='muted'>({e(g['detail'])})</span>"
                                                  if g.get("detail") else "")
        rows.append(f"<tr><td>{e(g['name']) + ' — ' if named else ''}<code>{e(g['expr'])}</code></td>"
                    f"<td>{_num(g['observed'])}</td><td>{expected}</td><td class='{css}'>{label}</td></tr>")
    return (f"<h3>{title or t['gates']}</h3><div class='wrap'><table><tr><th>{t['gate']}</th>"
            f"<th>{t['observed']}</th><th>{t['expected']}</th><th>{t['result']}</th></tr>{''.join(rows)}"
            f"</table></div>")


def _unit_class(rate: float | None, submitted: int, in_stage: bool, target: float) -> int:
    if not in_stage:
        return 4
    if not submitted or rate is None:
        return 3
    if rate >= target:
        return 0
    return 1 if rate >= target - 0.10 else 2


def _unit_grid(stage: dict[str, Any], t: dict[str, str]) -> str:
    e = html.escape
    results = stage.get("unit_results", {})
    # `unit_codes` says which units took part; an older summary without it: those with results, or all 168.
    codes = stage.get("unit_codes")
    in_stage = set(codes) if codes else ({int(c) for c in results} if stage.get("units") != 168 else None)
    target = stage.get("completion_target") or 0.96
    out = [f"<h3>{t['unit_grid']}</h3>"]
    units = load_units()
    for province in FormerProvince:
        cells = []
        group = [u for u in units if u.former_province == province]
        for u in group:
            r = results.get(str(u.code), {})
            sub, done, rate = r.get("submitted", 0), r.get("complete", 0), r.get("completion_rate")
            taking_part = in_stage is None or u.code in in_stage
            cls = _unit_class(rate, sub, taking_part, target)
            tip = (f"{u.code} {u.name}: {done}/{sub} {percent(rate)}" if sub
                   else f"{u.code} {u.name}: {t['no_dossiers'] if taking_part else t['not_in_stage']}")
            label = "" if rate is None else f"{math.floor(rate * 100 + 1e-9):.0f}"
            cells.append(f"<div class='cell c{cls}' title='{e(tip)}' data-unit='{u.code}'>{label}</div>")
        out.append(f"<div class='muted'>{e(t[province.value])} — {len(group)} {t['units']}</div>"
                   f"<div class='grid'>{''.join(cells)}</div>")
    legend = t["legend"].split(" · ")
    out.append("<div class='legend'>" + "".join(f"<i class='c{i}'></i>{e(x)}" for i, x in enumerate(legend))
               + "</div>")
    return "".join(out)


def _worst_units(stage: dict[str, Any], t: dict[str, str], scale: float, limit: int = 20) -> str:
    e = html.escape
    names = {u.code: u.name for u in load_units()}
    rows = sorted(((int(c), r) for c, r in stage.get("unit_results", {}).items() if r.get("submitted")),
                  key=lambda cr: (cr[1]["completion_rate"] if cr[1]["completion_rate"] is not None else 2.0,
                                  -cr[1]["submitted"]))
    body = []
    for code, r in rows[:limit]:
        med = r.get("median_complete_s")
        med_txt = "–" if med is None else f"{med * scale / 60:,.0f} min"
        body.append(f"<tr><td>{code} {e(names.get(code, ''))}</td><td>{r['submitted']:,}</td><td>{r['complete']:,}</td>"
                    f"<td>{percent(r['completion_rate'])}</td><td>{med_txt}</td></tr>")
    return (f"<h3>{t['worst']}</h3><div class='wrap'><table class='worst'><tr><th>{t['unit']}</th>"
            f"<th>{t['submitted']}</th><th>{t['complete']}</th><th>{t['rate']}</th><th>{t['median_ttc']}</th></tr>"
            f"{''.join(body)}</table></div>")


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


def _figure(img: str, caption: str) -> str:
    return f"<figure><figcaption>{html.escape(caption)}</figcaption><img alt='{html.escape(caption)}' src='{img}'></figure>"


def _stage_html(stage: dict[str, Any], data: StageData | None, t: dict[str, str], scale: float,
                draw: bool = True) -> str:
    e = html.escape
    out = [f"<h2 id='stage-{e(stage['name'])}'>{e(stage['name'])} <span class='verdict {e(stage['verdict'])}'>"
           f"{e(stage['verdict'])}</span> <span class='muted'>{stage['units']} {t['units']}</span></h2>",
           _kpis(stage, t), _gates(stage, t), _cutover_and_markers(stage, t)]
    if stage.get("reconciled") is False:
        out.insert(1, f"<p class='fail'>{t['not_reconciled']}</p>")
    if stage.get("aborted"):
        ab = stage["aborted"]
        out.insert(1, f"<p class='fail' data-kpi='aborted'>"
                      f"{e(t['aborted'].format(at=round((ab.get('at_s') or 0) / 60), gate=ab.get('gate')))}</p>")
    labels = {**t, "completion": t["completion"], "cutover": t["cutover"]}
    if draw and data is not None:
        target = stage.get("completion_target") or 0.96
        out.append(f"<h3>{t['over_time']}</h3><div class='charts'>")
        out.append(_figure(charts.completion_chart(data, scale, target, labels), t["completion_over_time"]))
        out.append(_figure(charts.sessions_chart(data, scale, labels), t["sessions_over_time"]))
        out.append(_figure(charts.throughput_chart(data, scale, labels), t["throughput"]))
        out.append(_figure(charts.latency_chart(data, scale, labels), t["latency"]))
        out.append("</div>")
    out.append(_unit_grid(stage, t))
    out.append(_worst_units(stage, t, scale))
    if draw and data is not None:
        out.append("<div class='charts'>")
        out.append(_figure(charts.funnel_chart(stage["dossiers"].get("by_status", {}), labels), t["funnel"]))
        out.append(_figure(charts.completion_time_chart(data, labels), t["ttc"]))
        out.append("</div>")
    out.append(_top_errors(data, t))
    out.append(_requests(stage, t))
    return "".join(out)


def _comparison(stages: list[dict[str, Any]], t: dict[str, str], draw: bool) -> str:
    e = html.escape
    rows = []
    for s in stages:
        total = s.get("requests_total") or {}
        rows.append(f"<tr><td><a href='#stage-{e(s['name'])}'>{e(s['name'])}</a></td>"
                    f"<td><span class='verdict {e(s['verdict'])}'>{e(s['verdict'])}</span></td><td>{s['units']}</td>"
                    f"<td>{percent(s['completion_rate'])}</td><td>{s['sessions']['peak_harness']:,} · "
                    f"{s['sessions']['peak_portal']:,}</td><td>{_ms(total.get('p95_ms'))}</td>"
                    f"<td>{percent(s.get('error_rate'))}</td><td>{s['dossiers']['lost']:,}</td></tr>")
    out = [f"<h2>{t['stages']}</h2><div class='wrap'><table class='stages'><tr><th>{t['stage']}</th>"
           f"<th>{t['verdict']}</th><th>{t['units']}</th><th>{t['completion']}</th><th>{t['sessions']}</th>"
           f"<th>p95</th><th>{t['errors']}</th><th>{t['lost']}</th></tr>{''.join(rows)}</table></div>"]
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
            f"<title>{e(summary['scenario'])} — {e(verdict)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>")


def read_summary(run_dir: Path) -> dict[str, Any]:
    from ..results.summary import read_summary_file

    return read_summary_file(run_dir)


def recover_stages(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Add the stages that left data on disk but never reached ``summary.json`` (the harness was killed).

    Their figures come from the ledger and the time series alone
    (`rehearsal.results.reconcile.from_ledger`), marked INCOMPLETE and
    ``"reconciled": false``; the summary on disk is not changed.
    """
    from ..results.ledger import read_events
    from ..plan import load_plan
    from ..results.reconcile import from_ledger
    from ..results.summary import stage_summary

    have = {s["name"] for s in summary.get("stages", [])}
    stages_dir = run_dir / "stages"
    missing = [p for p in sorted(stages_dir.iterdir(), key=lambda p: p.stat().st_mtime)
               if p.is_dir() and p.name not in have] if stages_dir.exists() else []
    if not missing:
        return summary
    try:
        plan = load_plan(run_dir / "scenario.yaml", time_scale=summary.get("time_scale"))
    except Exception:  # noqa: BLE001 (without the scenario there is nothing to rebuild a stage from)
        return summary
    summary = {**summary, "stages": list(summary.get("stages", [])), "verdict": "INCOMPLETE"}
    for sdir in missing:
        try:
            stage = plan.stage(sdir.name)
        except Exception:  # noqa: BLE001
            continue
        rec = from_ledger(read_events(run_dir / "ledger" / f"{stage.name}.jsonl"))
        entry = stage_summary(stage, sdir, rec, finished=False)
        entry["reconciled"] = False
        summary["stages"].append(entry)
    return summary


def build_report(run_dir: Path, lang: str = "vi", out: Path | None = None) -> Path:
    """(Re)build ``index.html`` (``index.en.html`` for English) of a run directory."""
    run_dir = Path(run_dir)
    summary = recover_stages(run_dir, read_summary(run_dir))
    page = render(summary, load_run(run_dir, summary), lang)
    out = out or run_dir / ("index.html" if lang == "vi" else f"index.{lang}.html")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
