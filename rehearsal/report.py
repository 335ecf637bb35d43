"""The run report, ``reports/<run>/index.html``: one self-contained page.

Built only from ``summary.json`` (one source of truth), so it can be rebuilt
at any time, also for a run that crashed. This is the plain page; the
managers' dashboard with charts is a later step.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .errors import RunError
from .wards import units_by_code

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:1rem;color:#1b1f23;max-width:1100px}
h1{font-size:1.4rem;margin:.2rem 0} h2{font-size:1.1rem;margin-top:1.5rem}
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:.3rem;color:#fff;font-weight:700}
.GO{background:#1a7f37}.NO-GO{background:#cf222e}.INCOMPLETE{background:#9a6700}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #d0d7de;padding:.25rem .4rem;text-align:right}
th:first-child,td:first-child{text-align:left}
.tiles{display:flex;flex-wrap:wrap;gap:.5rem}
.tile{border:1px solid #d0d7de;border-radius:.4rem;padding:.5rem .8rem;min-width:9rem}
.tile b{display:block;font-size:1.3rem}
.fail{color:#cf222e;font-weight:600}.pass{color:#1a7f37}
.wrap{overflow-x:auto}
"""


def percent(x: float | None) -> str:
    """A rate as a percentage, rounded *down* to 0.1 %: 4,785 of 4,786 is 99.9 %, never 100.0 %."""
    if x is None:
        return "–"
    return f"{math.floor(x * 1000 + 1e-9) / 10:.1f}%"


_pct = percent


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.0f} ms"


def _stage_html(stage: dict[str, Any]) -> str:
    e = html.escape
    d, s = stage["dossiers"], stage["sessions"]
    total = stage.get("requests_total") or {}
    tiles = [
        ("Tỷ lệ hồ sơ hoàn thành / completion", f"{_pct(stage['completion_rate'])} (mục tiêu {_pct(stage.get('completion_target'))})"),
        ("Đúng hạn / on time", _pct(stage.get("on_time_rate"))),
        ("Phiên đồng thời / sessions (harness · portal)", f"{s['peak_harness']:,} · {s['peak_portal']:,}"),
        ("Hồ sơ / dossiers (nộp · xong)", f"{d['submitted']:,} · {d['complete']:,}"),
        ("Hồ sơ thất lạc / lost", f"{d['lost']}"), ("Trùng / duplicated", f"{d['duplicated']}"),
        ("p95", _ms(total.get("p95_ms"))), ("Tỷ lệ lỗi / errors", _pct(stage.get("error_rate"))),
    ]
    out = [f"<h2>{e(stage['name'])} <span class='verdict {e(stage['verdict'])}'>{e(stage['verdict'])}</span>"
           f" — {stage['units']} đơn vị</h2><div class='tiles'>"]
    out += [f"<div class='tile'>{e(k)}<b>{e(v)}</b></div>" for k, v in tiles]
    out.append("</div><h3>Ngưỡng / gates</h3><div class='wrap'><table><tr><th>gate</th><th>observed</th><th>result</th></tr>")
    for g in stage["gates"]:
        obs = g["observed"]
        out.append(f"<tr><td>{e(g['expr'])}</td><td>{'–' if obs is None else f'{obs:,.4g}'}</td>"
                   f"<td class='{'pass' if g['passed'] else 'fail'}'>{'đạt / pass' if g['passed'] else 'không đạt / FAIL'}</td></tr>")
    out.append("</table></div>")
    out.append(_timeline_html(stage))
    units = units_by_code()
    rows = sorted(stage.get("unit_results", {}).items(),
                  key=lambda kv: (kv[1]["completion_rate"] if kv[1]["completion_rate"] is not None else 2.0))
    out.append("<h3>Đơn vị chậm nhất / worst units first</h3><div class='wrap'><table><tr><th>đơn vị</th>"
               "<th>nộp</th><th>xong</th><th>tỷ lệ</th></tr>")
    for code, u in rows[:20]:
        unit = units.get(int(code))
        label = f"{code} {unit.name}" if unit else code
        out.append(f"<tr><td>{e(label)}</td><td>{u['submitted']}</td><td>{u['complete']}</td>"
                   f"<td>{_pct(u['completion_rate'])}</td></tr>")
    out.append("</table></div><h3>Yêu cầu / requests</h3><div class='wrap'><table><tr><th>request</th><th>count</th>"
               "<th>failures</th><th>p50</th><th>p95</th><th>p99</th></tr>")
    for name, r in sorted(stage.get("requests", {}).items()):
        out.append(f"<tr><td>{e(name)}</td><td>{r['count']:,}</td><td>{r['failures']:,}</td>"
                   f"<td>{_ms(r['p50_ms'])}</td><td>{_ms(r['p95_ms'])}</td><td>{_ms(r['p99_ms'])}</td></tr>")
    out.append("</table></div>")
    return "".join(out)


_MARKER_LABELS = {"fault_start": "bắt đầu sự cố / fault on", "fault_end": "hết sự cố / fault off",
                  "cutover_close": "đóng cổng cũ / legacy portal closed",
                  "migration_done": "chuyển hồ sơ xong / migration done", "control_error": "lỗi điều khiển / control error"}


def _timeline_html(stage: dict[str, Any]) -> str:
    """The cutover's figures and the stage's fault and cutover markers, if it had any."""
    e = html.escape
    out = []
    cut = stage.get("cutover")
    if cut:
        figures = [
            ("Hồ sơ đang xử lý lúc đóng / open at close", cut.get("open_at_close")),
            ("Tìm thấy trên cổng quốc gia / found on national", _pct(cut.get("migration_found_rate"))),
            ("Thời gian chuyển / migration", f"{cut['migration_s']:.2f} s" if cut.get("migration_s") is not None
             else "–"),
            ("Gián đoạn / interruption", f"{cut['interruption_s']:.2f} s ({cut.get('interruption_failures', 0)} lỗi)"
             if cut.get("interruption_s") is not None else "–"),
            ("Phiên mất · lập lại / sessions lost · back", f"{cut.get('sessions_lost', 0)} · "
                                                          f"{cut.get('sessions_restored', 0)}"),
        ]
        out.append("<h3>Chuyển đổi / cutover</h3><div class='tiles'>")
        out += [f"<div class='tile'>{e(k)}<b>{e(str(v))}</b></div>" for k, v in figures]
        out.append("</div>")
        if cut.get("error"):
            out.append(f"<p class='fail'>{e(cut['error'])}</p>")
    markers = stage.get("markers") or []
    if markers:
        t0 = markers[0]["t"]
        out.append("<h3>Mốc thời gian / markers</h3><div class='wrap'><table><tr><th>mốc</th><th>tên</th>"
                   "<th>phút (mô phỏng)</th><th>+ giây thực</th></tr>")
        for m in markers:
            sim = m.get("sim_s")
            out.append(f"<tr><td>{e(_MARKER_LABELS.get(m['kind'], m['kind']))}</td><td>{e(str(m.get('name', '')))}</td>"
                       f"<td>{'–' if sim is None else f'{sim / 60:.0f}'}</td><td>{m['t'] - t0:.1f}</td></tr>")
        out.append("</table></div>")
    return "".join(out)


def render(summary: dict[str, Any]) -> str:
    e = html.escape
    body = [f"<h1>Diễn tập chuyển đổi — {e(summary['scenario'])}</h1>",
            f"<p><span class='verdict {e(summary['verdict'])}'>{e(summary['verdict'])}</span> "
            f"run {e(summary['run_id'])} · {e(str(summary['started_at']))} → {e(str(summary.get('finished_at') or '…'))}"
            f" · time scale ×{summary['time_scale']:g} · target {e(str(summary['target']))}</p>"]
    if summary["verdict"] == "INCOMPLETE":
        body.append("<p class='fail'>Lần chạy chưa hoàn tất (INCOMPLETE): số liệu dưới đây là những gì đã đo được.</p>")
    for err in summary.get("errors", []):
        body.append(f"<p class='fail'>{e(err)}</p>")
    body += [_stage_html(s) for s in summary["stages"]]
    return ("<!doctype html><html lang='vi'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{e(summary['scenario'])} — {e(summary['verdict'])}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>")


def build_report(run_dir: Path) -> Path:
    """(Re)build ``index.html`` of a run directory from its ``summary.json``."""
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot read the run summary: {exc}") from None
    out = Path(run_dir) / "index.html"
    out.write_text(render(summary), encoding="utf-8")
    return out
