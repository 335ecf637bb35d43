"""A run the harness did not finish (killed, even with kill -9), rebuilt from what it left on disk.

The stages that left data but never reached ``summary.json`` get an entry
from the ledger and the time series alone: INCOMPLETE and ``"reconciled":
false``. The report shows them; the summary on disk is not changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plan import load_plan
from .ledger import read_events
from .reconcile import from_ledger
from .summary import stage_summary


def recover_stages(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Add the stages that left data on disk but never reached ``summary.json`` (the harness was killed).

    Their figures come from the ledger and the time series alone
    (`rehearsal.results.reconcile.from_ledger`), marked INCOMPLETE and
    ``"reconciled": false``; the summary on disk is not changed.
    """
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
