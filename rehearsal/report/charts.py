"""The report's charts: matplotlib figures from pandas frames, embedded as PNG data URIs.

`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no global
state, no display). The x axis of every time chart is **simulated minutes
from the start of the stage** — what a manager reads ("the 2-hour mark") —
and every time chart carries the stage's fault spans (shaded), cutover
markers (a vertical line) and the windows in which the harness was starved
(hatched grey: what was measured there cannot be trusted).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .data import StageData  # noqa: E402

BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#1f6feb", "#d97706", "#1a7f37", "#cf222e", "#6e7781", "#8250df"
#: Steps a dossier reached, from its final status. Withdrawn ones (7 asked, 8 stopped) are the last two
#: bars, apart: their final status does not say how far they had gone before the citizen asked.
STATUS_FUNNEL = (
    ("submitted", (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)),
    ("received", (2, 4, 5, 9, 10)),
    ("processing", (4, 5, 9, 10)),
    ("decided", (9, 10)),
    ("returned", (10,)),
    ("withdrawal_asked", (7,)),
    ("stopped", (8,)),
)
WITHDRAWN_STEPS = ("withdrawal_asked", "stopped")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(height: float = 2.8, width: float = 8.0) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.grid(True, color="#d0d7de", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _minutes(stage: StageData, t: Any, scale: float) -> Any:
    return stage.rel(t) * scale / 60.0


def _markers(ax: Axes, stage: StageData, scale: float, labels: dict[str, str]) -> None:
    """Fault spans shaded, starved windows hatched, cutover and migration as vertical lines."""
    for i, w in enumerate(stage.starved):
        ax.axvspan(_minutes(stage, float(w["from"]), scale), _minutes(stage, float(w["to"]), scale), facecolor=GREY,
                   alpha=0.18, hatch="//", edgecolor=GREY, linewidth=0,
                   label=labels.get("starved_chart", "harness starved") if i == 0 else None)
    starts: dict[str, float] = {}
    end_x = ax.get_xlim()[1]
    for m in stage.markers:
        x = _minutes(stage, float(m["t"]), scale)
        kind = m.get("kind")
        if kind == "fault_start":
            starts[str(m.get("name"))] = x
        elif kind == "fault_end" and str(m.get("name")) in starts:
            ax.axvspan(starts.pop(str(m.get("name"))), x, color=ORANGE, alpha=0.12, linewidth=0)
        elif kind in ("cutover_close", "migration_done"):
            ax.axvline(x, color=PURPLE, linewidth=1.2, linestyle="--" if kind == "migration_done" else "-")
            if kind == "cutover_close":
                ax.annotate(labels.get("cutover", "cutover"), (x, 1), xycoords=("data", "axes fraction"),
                            xytext=(3, -10), textcoords="offset points", color=PURPLE, fontsize=8)
    for x in starts.values():  # faults still on at the end of the stage
        ax.axvspan(x, max(end_x, x), color=ORANGE, alpha=0.12, linewidth=0)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=GREY)


def _time_chart(stage: StageData, scale: float, labels: dict[str, str], draw: Callable[[Axes], bool],
                height: float = 2.8) -> str:
    fig, ax = _figure(height)
    if not draw(ax):
        _empty(ax, labels["no_data"])
    else:
        _markers(ax, stage, scale, labels)
        ax.set_xlabel(labels["sim_minutes"])
        ax.legend(loc="best", fontsize=8, frameon=False)
    return _png(fig)


def completion_chart(stage: StageData, scale: float, target: float, labels: dict[str, str],
                     band: Sequence[dict[str, Any]] | None = None) -> str:
    """Completion over time against the target; `band` (``completion_over_time``) shades its 95 % interval."""
    def draw(ax: Axes) -> bool:
        ts = stage.timeseries
        if ts.empty or "submitted" not in ts:
            return False
        ts = ts[ts["submitted"] > 0]
        if ts.empty:
            return False
        x = _minutes(stage, ts["t"], scale)
        # Withdrawn dossiers leave the count (complete ÷ (submitted − withdrawn)), as in the summary.
        counted = ts["submitted"] - (ts["withdrawn"].fillna(0) if "withdrawn" in ts else 0)
        ax.plot(x, 100.0 * ts["complete"] / counted.where(counted > 0), color=BLUE, label=labels["completion"])
        ci = pd.DataFrame([p for p in band or () if p.get("completion_rate_lower") is not None])
        if not ci.empty:
            ax.fill_between(_minutes(stage, ci["t"], scale), 100.0 * ci["completion_rate_lower"],
                            100.0 * ci["completion_rate_upper"], color=BLUE, alpha=0.15, linewidth=0,
                            label=labels.get("ci95_band", "95 %"))
        ax.axhline(100 * target, color=RED, linewidth=1, linestyle="--", label=f"{100 * target:g} %")
        ax.set_ylim(0, 102)
        ax.set_ylabel("%")
        return True
    return _time_chart(stage, scale, labels, draw)


def sessions_chart(stage: StageData, scale: float, labels: dict[str, str], line: int = 1000) -> str:
    def draw(ax: Axes) -> bool:
        ts = stage.timeseries
        if ts.empty or "sessions_harness" not in ts:
            return False
        x = _minutes(stage, ts["t"], scale)
        ax.plot(x, ts["sessions_harness"], color=BLUE, label=labels["harness"])
        if "sessions_portal" in ts:
            ax.plot(x, pd.to_numeric(ts["sessions_portal"], errors="coerce"), color=GREEN, label=labels["portal"],
                    linestyle="--")
        ax.axhline(line, color=RED, linewidth=1, linestyle=":", label=f"{line:,}")
        ax.set_ylim(bottom=0)
        return True
    return _time_chart(stage, scale, labels, draw)


def throughput_chart(stage: StageData, scale: float, labels: dict[str, str]) -> str:
    def draw(ax: Axes) -> bool:
        ts = stage.timeseries
        if ts.empty or "rps" not in ts:
            return False
        x = _minutes(stage, ts["t"], scale)
        ax.plot(x, ts["rps"], color=BLUE, label=labels["rps"])
        ax.plot(x, ts.get("fail_per_s", 0), color=RED, label=labels["fail_per_s"])
        ax.set_ylim(bottom=0)
        return True
    return _time_chart(stage, scale, labels, draw)


def latency_chart(stage: StageData, scale: float, labels: dict[str, str], top: int = 6) -> str:
    """p50 / p95 / p99 over time for the busiest request types, one small chart each."""
    h = stage.history
    if h.empty:
        fig, ax = _figure()
        _empty(ax, labels["no_data"])
        return _png(fig)
    h = h[h["name"] != "Aggregated"]
    counts = h.groupby(["method", "name"])["count"].max().sort_values(ascending=False)
    names = list(counts.index[:top])
    cols = 2
    rows = max(1, (len(names) + cols - 1) // cols)
    fig = Figure(figsize=(8.0, 1.9 * rows + 0.3))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for i, (method, name) in enumerate(names):
        ax = axes[i // cols][i % cols]
        part = h[(h["method"] == method) & (h["name"] == name)]
        x = _minutes(stage, part["t"], scale)
        for col, color, label in (("p50", BLUE, "p50"), ("p95", ORANGE, "p95"), ("p99", RED, "p99")):
            ax.plot(x, part[col], color=color, linewidth=1, label=label)
        _markers(ax, stage, scale, labels)
        ax.set_title(f"{method} {name}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        ax.grid(True, color="#d0d7de", linewidth=0.5)
        if i == 0:
            ax.legend(fontsize=7, frameon=False, loc="upper right")
    for j in range(len(names), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.supylabel("ms", fontsize=8)
    fig.supxlabel(labels["sim_minutes"], fontsize=8)
    return _png(fig)


def completion_time_chart(stage: StageData, labels: dict[str, str]) -> str:
    """Distribution of simulated minutes from submission to completion, per procedure group."""
    fig, ax = _figure(height=2.8)
    ct = stage.completion_times
    if ct.empty:
        _empty(ax, labels["no_data"])
        return _png(fig)
    order = ct.groupby("group")["minutes"].median().sort_values().index.tolist()
    data = [ct.loc[ct["group"] == g, "minutes"].to_numpy() for g in order]
    ax.boxplot(data, orientation="horizontal", showfliers=False, widths=0.6)
    ax.set_yticks(range(1, len(order) + 1), [f"{g} ({len(d):,})" for g, d in zip(order, data)], fontsize=8)
    ax.set_xlabel(labels["ttc_minutes"])
    ax.grid(True, axis="x", color="#d0d7de", linewidth=0.6)
    return _png(fig)


def funnel_counts(by_status: dict[str, int]) -> list[tuple[str, int]]:
    """Dossiers that reached each step, from the final statuses (summary.json's ``by_status``)."""
    counts = {int(k): int(v) for k, v in by_status.items()}
    return [(step, sum(n for s, n in counts.items() if s in statuses)) for step, statuses in STATUS_FUNNEL]


def funnel_chart(by_status: dict[str, int], labels: dict[str, str]) -> str:
    steps = funnel_counts(by_status)
    if not any(n for s, n in steps if s in WITHDRAWN_STEPS):  # nobody withdrew: the five steps only
        steps = [(s, n) for s, n in steps if s not in WITHDRAWN_STEPS]
    fig, ax = _figure(height=2.2 if len(steps) <= 5 else 2.8)
    if not steps or steps[0][1] == 0:
        _empty(ax, labels["no_data"])
        return _png(fig)
    names = [labels[f"step_{s}"] for s, _ in steps][::-1]
    values = [n for _, n in steps][::-1]
    bars = ax.barh(names, values, color=[ORANGE if s in WITHDRAWN_STEPS else BLUE for s, _ in steps][::-1])
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8, padding=3)
    ax.set_xlim(0, max(values) * 1.15)
    ax.tick_params(labelsize=8)
    return _png(fig)


def stages_chart(stages: Sequence[dict[str, Any]], labels: dict[str, str]) -> str:
    """Completion rate and peak portal sessions per stage, side by side, with the 96 % and 1,000 lines."""
    fig = Figure(figsize=(8.0, 2.6))
    ax1, ax2 = fig.subplots(1, 2)
    names = [s["name"] for s in stages]
    rates = [100 * (s.get("completion_rate") or 0) for s in stages]
    colors = [GREEN if s["verdict"] == "GO" else RED if s["verdict"] == "NO-GO" else ORANGE for s in stages]
    ax1.bar(names, rates, color=colors)
    ax1.axhline(96, color=RED, linestyle="--", linewidth=1)
    ax1.set_ylim(0, 105)
    ax1.set_title(labels["completion"], fontsize=9, loc="left")
    sessions = [s["sessions"]["peak_portal"] for s in stages]
    ax2.bar(names, sessions, color=colors)
    ax2.axhline(1000, color=RED, linestyle=":", linewidth=1)
    ax2.set_title(labels["sessions_portal_peak"], fontsize=9, loc="left")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def compare_chart(result: dict[str, Any], out: Path) -> Path:
    """p95 of each request type, A against B, one panel per stage; a PNG at `out`."""
    stages = list(result["p95_by_request"].items())
    height = max(3.0, sum(0.32 * len(r) + 1.2 for _, r in stages))
    fig = Figure(figsize=(9, height))
    if not stages:
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no request figures in common", ha="center", va="center")
        ax.axis("off")
    else:
        axes = fig.subplots(len(stages), 1, squeeze=False,
                            gridspec_kw={"height_ratios": [max(1, len(r)) for _, r in stages]})
        for ax, (stage, reqs) in zip(axes[:, 0], stages):
            names = list(reqs)
            ys = range(len(names))
            va = [reqs[n][0] or 0 for n in names]
            vb = [reqs[n][1] or 0 for n in names]
            ax.barh([y + 0.2 for y in ys], va, height=0.4, color="#9aa5b1", label=f"A: {result['a']}")
            ax.barh([y - 0.2 for y in ys], vb, height=0.4, color="#1f6feb", label=f"B: {result['b']}")
            for y, x0, x1 in zip(ys, va, vb):
                if x0:
                    pct = (x1 - x0) / x0 * 100
                    ax.text(max(x0, x1), y, f"  {pct:+.0f}%", va="center", fontsize=8,
                            color="#b42318" if pct > 10 else "#333")
            ax.set_yticks(list(ys), names, fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{stage}: p95 by request type (ms)", fontsize=10, loc="left")
            ax.legend(fontsize=8, loc="lower right")
            ax.margins(x=0.15)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
