"""The report's runbook panel: the cutover's phases planned against actual, and the rollback's cost.

Reads the stage's ``cutover`` entry (`rehearsal.results.runbook`): a
timeline chart (each phase's planned span as a pale bar, its actual span
as a solid one coloured by outcome, the rollback as a red line; x in
simulated minutes from the stage's start, like every time chart), a table of
the same figures with the checks that failed, and the rollback's tiles. A
rolled-back (or held) stage says so under its title: "NO-GO (rolled back)"
with the reason; the verdict key itself stays NO-GO (the run-directory
contract).
"""

from __future__ import annotations

import html
from typing import Any

from .charts import GREEN, GREY, ORANGE, RED, _figure, _png
from .style import figure as _frame
from .style import tile as _tile
from .text import TEXT

_WORDS: dict[str, tuple[str, str]] = {
    "title": ("Kịch bản chuyển đổi: kế hoạch và thực tế", "Cutover runbook: planned against actual"),
    "rolled_back": ("NO-GO (đã quay lại cổng thành phố)", "NO-GO (rolled back)"),
    "held": ("NO-GO (dừng chuyển đổi)", "NO-GO (held)"),
    "rolled_back_expected": ("Đã quay lại cổng thành phố, như đêm diễn tập này cần chứng minh:",
                             "Rolled back, as this night was to prove:"),
    "phase": ("bước", "phase"), "planned": ("kế hoạch", "planned"), "actual": ("thực tế", "actual"),
    "start": ("bắt đầu (phút)", "start (min)"), "length": ("thời lượng (phút)", "length (min)"),
    "outcome": ("kết quả", "outcome"), "failing": ("kiểm tra không đạt", "failing checks"),
    "total": ("Tổng thời gian", "Total"), "rollback_s": ("Thời gian quay lại", "Rollback took"),
    "interruption": ("Gián đoạn (lỗi)", "Interruption (failures)"),
    "no_filing": ("Không nộp được hồ sơ", "Seconds without filing"),
    "kept": ("Hồ sơ nộp trên cổng quốc gia (đã đồng bộ)", "Filed on the national portal (synced)"),
    "minutes": ("phút (mô phỏng)", "simulated minutes"),
}
_COLOURS = {"done": GREEN, "passed": GREEN, "failed": RED, "over limit": ORANGE, "cut short": ORANGE}


def _words(t: dict[str, str]) -> dict[str, str]:
    en = t.get("title") == TEXT["en"]["title"]
    return {k: v[1 if en else 0] for k, v in _WORDS.items()}


def runbook_reason_html(stage: dict[str, Any], t: dict[str, str]) -> str:
    """Under a stage's title: NO-GO (rolled back) or (held), with the reason ("" otherwise)."""
    cut = stage.get("cutover") or {}
    if not (cut.get("rolled_back") or cut.get("held")):
        return ""
    w = _words(t)
    why = str(stage.get("verdict_reason") or "")
    if cut.get("rolled_back") and stage.get("verdict") == "GO":  # a night that expects it (cutover_rolled_back == 1)
        why = why.removeprefix("rolled back: ")
        return f"<p data-kpi='rolled-back'><b>{html.escape(w['rolled_back_expected'])}</b> {html.escape(why)}</p>"
    label = w["rolled_back"] if cut.get("rolled_back") else w["held"]
    return f"<p class='fail' data-kpi='rolled-back'><b>{html.escape(label)}</b> {html.escape(why)}</p>"


def runbook_chart(phases: list[dict[str, Any]], rollback: dict[str, Any] | None, w: dict[str, str]) -> str:
    """Each phase planned (pale) against actual (solid), in simulated minutes from the stage's start."""
    fig, ax = _figure(height=0.5 + 0.45 * len(phases))
    for i, p in enumerate(phases):
        ax.barh(i + 0.18, p["planned_s"] / 60, left=p["planned_start_s"] / 60, height=0.34, color=GREY, alpha=0.35,
                label=w["planned"] if i == 0 else None)
        if p.get("start_s") is not None and p.get("end_s") is not None:
            ax.barh(i - 0.18, max(p["end_s"] - p["start_s"], 0.5) / 60, left=p["start_s"] / 60, height=0.34,
                    color=_COLOURS.get(str(p.get("outcome")), GREY), label=w["actual"] if i == 0 else None)
    if rollback and rollback.get("start_s") is not None:
        ax.axvline(rollback["start_s"] / 60, color=RED, linewidth=1.5, linestyle="--")
    ax.set_yticks(range(len(phases)), [p["phase"] for p in phases])
    ax.invert_yaxis()
    ax.set_xlabel(w["minutes"])
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def runbook_panel(stage: dict[str, Any], t: dict[str, str], draw: bool = True) -> str:
    """The runbook's chart, table and rollback tiles ("" for a stage without a cutover)."""
    cut = stage.get("cutover") or {}
    phases = [p for p in cut.get("phases") or [] if isinstance(p, dict)]
    if not phases:
        return ""
    e, w = html.escape, _words(t)

    def minutes(x: Any) -> str:
        return "–" if x is None else f"{x / 60:.1f}"

    out = [f"<h3>{e(w['title'])}</h3>"]
    if draw:
        out.append("<div class='narrow'>" + _frame(runbook_chart(phases, cut.get("rollback"), w), w["title"])
                   + "</div>")
    out.append(f"<div class='wrap'><table data-kpi='runbook'><tr><th>{w['phase']}</th>"
               f"<th>{w['planned']}: {w['start']}</th><th>{w['planned']}: {w['length']}</th>"
               f"<th>{w['actual']}: {w['start']}</th><th>{w['actual']}: {w['length']}</th>"
               f"<th>{w['outcome']}</th><th>{w['failing']}</th></tr>")
    for p in phases:
        failing = "; ".join(f"{c['name']} ({c['detail']})" for c in p.get("checks") or [] if not c.get("passed"))
        state = "fail" if p.get("outcome") in ("failed", "over limit") else ""
        out.append(f"<tr><td>{e(p['phase'])}</td><td>{minutes(p.get('planned_start_s'))}</td>"
                   f"<td>{minutes(p.get('planned_s'))}</td><td>{minutes(p.get('start_s'))}</td>"
                   f"<td>{minutes(p.get('actual_s'))}</td><td class='{state}'>{e(str(p.get('outcome', '–')))}</td>"
                   f"<td>{e(failing or p.get('error') or '')}</td></tr>")
    out.append("</table></div><div class='tiles'>")
    out.append(_tile("runbook-total", w["total"], f"{minutes(cut.get('total_s'))} min"))
    rb = cut.get("rollback") or {}
    if rb:
        out.append(_tile("rollback", w["rollback_s"], f"{rb.get('duration_s', 0):.2f} s", state="bad"))
        out.append(_tile("rollback-interruption", w["interruption"],
                         f"{rb.get('interruption_s') or 0:.2f} s ({rb.get('interruption_failures', 0)})"))
        out.append(_tile("rollback-no-filing", w["no_filing"], "–" if rb.get("no_filing_s") is None
                         else f"{rb['no_filing_s']:.1f} s"))
        out.append(_tile("rollback-kept", w["kept"], f"{rb.get('kept_on_national', 0)} "
                                                    f"({rb.get('kept_synced', 0)})"))
    out.append("</div>")
    return "".join(out)
