"""Baselines: a finished run's figures, stored small enough to commit, for gates and comparisons.

``rehearse baseline save RUN_DIR NAME`` writes ``baselines/NAME.json``: for
each stage (and for the whole run), every gate metric over the whole stage,
each request type's count, error rate and p50/p90/p95/p99/max, and the
figure of every gate of the run's scenario (so ``p95_ms over every 5m <=
baseline * 1.1`` finds the same windowed figure). Figures are keyed the way
a gate names what it measures (`rehearsal.plan.gate_language.Gate.key`)::

    {"stages": {"full": {"p95_ms": 350.0, "p95_ms{name=\\"POST /api/dossiers\\"}": 420.0, ...}}}

A gate whose threshold is ``baseline ...`` looks its key up in the baseline
given with ``--baseline`` (or the scenario's ``baseline:``).
``rehearse compare A B`` prints the differences of two runs (or baselines)
and draws the request types' p95 side by side.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import BASELINES_DIR, __version__
from ..errors import PlanError, RunError
from ..plan import Plan
from .rejudge import run_figures_and_gates
from .summary import read_summary_file

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def baseline_path(name: str) -> Path:
    """A name (``ci-main``: ``baselines/ci-main.json``) or a path to a baseline file."""
    if name.endswith(".json") or "/" in name:
        return Path(name)
    return BASELINES_DIR / f"{name}.json"


def save_baseline(run_dir: Path, name: str, *, directory: Path | None = None) -> Path:
    """Store the figures of the finished run in `run_dir` as baseline `name`; returns the file."""
    if not _NAME.fullmatch(name):
        raise RunError(f"a baseline name is letters, digits, '.', '_' and '-' (it becomes a file name); "
                       f"found {name!r}")
    summary = read_summary_file(run_dir)
    if summary.get("verdict") == "INCOMPLETE":
        raise RunError(f"{run_dir} did not finish (verdict INCOMPLETE): a baseline must be a whole run")
    stages, run = run_figures_and_gates(run_dir, summary)
    body = {"name": name, "saved_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "run_id": summary.get("run_id"), "scenario": summary.get("scenario"),
            "time_scale": summary.get("time_scale"), "verdict": summary.get("verdict"),
            "harness_version": __version__, "stages": stages, "run": run}
    path = (directory / f"{name}.json") if directory else baseline_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, ensure_ascii=False, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def load_baseline(name: str) -> dict[str, Any]:
    """A stored baseline; `PlanError` naming the file if it is missing or not one."""
    path = baseline_path(name)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = sorted(p.stem for p in BASELINES_DIR.glob("*.json")) if BASELINES_DIR.exists() else []
        hint = f"known: {', '.join(known)}" if known else "save one with 'rehearse baseline save RUN_DIR NAME'"
        raise PlanError(f"no such baseline ({hint})", file=str(path)) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanError(f"cannot read the baseline: {exc}", file=str(path)) from None
    if not isinstance(body, dict) or not isinstance(body.get("stages"), dict):
        raise PlanError("not a baseline file (expected an object with 'stages'; see 'rehearse baseline save')",
                        file=str(path))
    body.setdefault("name", path.stem)
    return body


def baseline_for(plan: Plan, name: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """The baseline a run (or a re-judging of one) compares with, and a note when there is none to use.

    One rule for ``rehearse run`` and ``rehearse gate``: a baseline named on the
    command line must exist (`PlanError` otherwise, before any load is sent);
    the scenario's own ``baseline:`` may not exist yet (a pipeline's first run
    has nothing to compare with), and then its ``baseline`` gates are skipped,
    with the returned note saying so.
    """
    if name:
        return load_baseline(name), None
    if not plan.baseline:
        return None, None
    try:
        return load_baseline(plan.baseline), None
    except PlanError as exc:
        return None, f"{exc}; 'baseline' gates are skipped"


# -- rehearse compare -----------------------------------------------------------

def _figures_of_source(source: str) -> tuple[str, dict[str, dict[str, float]]]:
    """(label, {stage: figures}) of a run directory or a baseline."""
    path = Path(source)
    if path.is_dir():
        label = path.name
        stages, run = run_figures_and_gates(path, read_summary_file(path))
    else:
        body = load_baseline(source)
        label, stages, run = f"baseline {body['name']}", body["stages"], body.get("run", {})
    # With one stage the whole run is that stage again: not worth a second table and panel.
    return label, {**stages, "(run)": run} if len(stages) > 1 else dict(stages)


#: The rows `compare` shows first, in this order; then each request type's p95.
COMPARE_KEYS = ("completion_rate", "sessions_peak_portal", "requests", "error_rate", "p50_ms", "p95_ms", "p99_ms",
                "lost_dossiers")


def compare(a: str, b: str) -> dict[str, Any]:
    """The differences of run (or baseline) `b` against `a`: rows per stage, and p95 per request type."""
    label_a, fa = _figures_of_source(a)
    label_b, fb = _figures_of_source(b)
    rows: list[dict[str, Any]] = []
    per_request: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    for stage in [s for s in fa if s in fb]:
        xa, xb = fa[stage], fb[stage]
        keys = [k for k in COMPARE_KEYS if k in xa or k in xb]
        req = sorted({k for k in (*xa, *xb) if k.startswith('p95_ms{name="')})
        for key in keys + req:
            va, vb = xa.get(key), xb.get(key)
            change = vb - va if va is not None and vb is not None else None
            pct = change / va * 100 if change is not None and va else None
            rows.append({"stage": stage, "figure": key, "a": va, "b": vb, "change": change, "change_pct": pct})
        if req:
            per_request[stage] = {k[len('p95_ms{name="'):-2]: (xa.get(k), xb.get(k)) for k in req}
    only = sorted(set(fa) ^ set(fb))
    return {"a": label_a, "b": label_b, "rows": rows, "p95_by_request": per_request, "stages_in_one_only": only}


def format_compare(result: dict[str, Any]) -> str:
    """The comparison as a plain-text table."""
    def num(x: float | None) -> str:
        if x is None:
            return "-"
        return f"{x:.4f}" if abs(x) < 1 and x != 0 else f"{x:,.1f}"
    head = ("stage", "figure", "A", "B", "change", "%")
    lines = [(r["stage"], r["figure"], num(r["a"]), num(r["b"]), num(r["change"]),
              f"{r['change_pct']:+.1f}%" if r["change_pct"] is not None else "-") for r in result["rows"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)] if lines else [len(h) for h in head]
    out = [f"A = {result['a']}", f"B = {result['b']}", ""]
    for row in (head, *lines):
        out.append("  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in
                             enumerate(zip(row, widths))).rstrip())
    if result["stages_in_one_only"]:
        out.append(f"\nin one only (not compared): {', '.join(result['stages_in_one_only'])}")
    return "\n".join(out)
