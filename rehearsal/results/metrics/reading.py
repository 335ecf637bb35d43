"""One stage's files read as they grow, for the exporter: the running figures its metrics are made of.

A stage's time series, ledger and latency log are each appended to by one
writer (the Locust master, or the single local process). A `StageReading`
keeps a read position in each (`rehearsal.shared.jsonl.JsonlTail`) and the
running figures those lines add up to, so a scrape reads only what was
written since the last one instead of a two-hour ledger every 15 seconds.
It is a cache of the files, not state of its own: a new reading (a restarted
exporter) reads from the start and reaches the same figures; a file that
shrinks or is replaced starts the reading over.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from ...plan.gate_language import DOSSIER_METRICS, REQUEST_METRICS, SESSION_METRICS, Gate
from ...shared.jsonl import JsonlTail
from ...shared.status import COMPLETE_KINDS, WITHDRAWN_KINDS, completion_rate
from ..gates import GateData, GateResult, judge, measure_all
from ..latency import Tally
from ..windows import WindowedFigure


class _Tail(JsonlTail):
    """A `JsonlTail` that says when its file was replaced or cut short (then everything is read again)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.inode: int | None = None

    def restarted(self) -> bool:
        try:
            st = self.path.stat()
        except OSError:
            return False
        changed = (self.inode is not None and st.st_ino != self.inode) or st.st_size < self.offset
        self.inode = st.st_ino
        return changed


class StageReading:
    """What one stage has written so far: last sample, peaks, dossiers per unit, requests, live gates."""

    def __init__(self, stage_dir: Path, ledger: Path, gates: Sequence[Gate] = (), time_scale: float = 1.0) -> None:
        self.stage_dir = stage_dir
        self.ledger = ledger
        self.gates = tuple(gates)
        self.time_scale = time_scale
        self._reset()

    def _reset(self) -> None:
        self.series = _Tail(self.stage_dir / "timeseries.jsonl")
        self.events = _Tail(self.ledger)
        self.latency = _Tail(self.stage_dir / "latency.jsonl")
        #: The latest time-series row (users, sessions, systems, sync backlog…).
        self.last_row: dict[str, Any] = {}
        #: Most sessions seen in one sample: "harness", "portal", and each system's name.
        self.peaks: dict[str, int] = {}
        self.start: float | None = None
        self.filed: set[Any] = set()
        #: unit code -> [submitted, complete, withdrawn] of this stage's dossiers, from the ledger.
        self.units: dict[int, list[int]] = {}
        #: request type (tags merged) -> its requests so far.
        self.requests: dict[str, Tally] = {}
        self.figures: list[tuple[Gate, WindowedFigure]] | None = None

    # -- reading ---------------------------------------------------------------
    def refresh(self) -> None:
        """Read whatever the stage's files gained since the last call."""
        if any(tail.restarted() for tail in (self.series, self.events, self.latency)):
            self._reset()
        latency_rows = self.latency.read()
        series_rows = self.series.read()
        for row in latency_rows:
            if "start" in row and self.start is None:
                self.start = float(row["start"])
        if self.start is None and series_rows:
            self.start = float(series_rows[0]["t"])
        if self.figures is None and self.start is not None:
            self.figures = [(g, WindowedFigure(g, start=self.start, time_scale=self.time_scale))
                            for g in self.gates if g.metric in REQUEST_METRICS | SESSION_METRICS
                            and not g.uses_baseline]
        for row in latency_rows:
            if "hdr" in row:
                self._add_latency(row)
        for row in series_rows:
            self._add_sample(row)
        for event in self.events.read():
            self._add_event(event)

    def _add_latency(self, row: dict[str, Any]) -> None:
        decoded = HdrHistogram.decode(row["hdr"])  # once, whatever the number of gates
        self.requests.setdefault(row["name"], Tally()).add_row(row, decoded)
        for gate, fig in self.figures or ():
            if gate.metric in REQUEST_METRICS and gate.matches_request(row["name"], row.get("tag")):
                fig.feed(row, decoded)

    def _add_sample(self, row: dict[str, Any]) -> None:
        self.last_row = row
        counts = {"harness": row.get("sessions_harness"), "portal": row.get("sessions_portal")}
        counts.update({name: s.get("sessions") for name, s in (row.get("systems") or {}).items()
                       if isinstance(s, dict)})
        for who, n in counts.items():
            if isinstance(n, (int, float)):
                self.peaks[who] = max(self.peaks.get(who, 0), int(n))
        for gate, fig in self.figures or ():
            if gate.metric in SESSION_METRICS:
                fig.feed(row)

    def _add_event(self, e: dict[str, Any]) -> None:
        kind = e.get("kind")
        # A dossier is known by its id and, with two systems, by its code (MaHoSo): events may carry either.
        keys = [k for k in (("id", e.get("id")), ("code", e.get("code"))) if k[1] is not None]
        ours = any(k in self.filed for k in keys)
        if kind == "submitted":
            self.filed.update(keys)
            self.units.setdefault(int(e.get("unit") or 0), [0, 0, 0])[0] += 1
        elif kind in COMPLETE_KINDS and ours:
            # Only this stage's dossiers: officers also finish what earlier stages left open.
            self.units.setdefault(int(e.get("unit") or 0), [0, 0, 0])[1] += 1
        elif kind in WITHDRAWN_KINDS and ours:
            self.units.setdefault(int(e.get("unit") or 0), [0, 0, 0])[2] += 1

    # -- figures -----------------------------------------------------------------
    def dossiers(self) -> dict[str, int]:
        """submitted, complete, withdrawn so far, as the ledger has them."""
        sub, done, gone = (sum(u[i] for u in self.units.values()) for i in range(3))
        return {"submitted": sub, "complete": done, "withdrawn": gone}

    def unit_results(self) -> dict[int, dict[str, Any]]:
        """Per unit, the shape of ``summary.json``'s ``unit_results`` (live: nothing reconciled yet)."""
        return {code: {"submitted": s, "complete": c, "withdrawn": w, "completion_rate": completion_rate(c, s, w)}
                for code, (s, c, w) in sorted(self.units.items()) if code}

    def gate_results(self, now: float) -> list[GateResult | None]:
        """Each gate judged on what has been measured so far; None where nothing can be judged yet.

        Request and session gates as `rehearsal.results.gates.LiveGates` judges
        them; dossier gates on the ledger's counts (lost dossiers are known only
        once the stage is reconciled); the rest once the stage's summary exists.
        """
        by_gate = {id(g): fig for g, fig in self.figures or ()}
        d = self.dossiers()
        figures = {"submitted_dossiers": float(d["submitted"]), "complete_dossiers": float(d["complete"]),
                   "withdrawn_dossiers": float(d["withdrawn"]),
                   "completion_rate": completion_rate(d["complete"], d["submitted"], d["withdrawn"])}
        data = GateData(time_scale=self.time_scale, start=self.start, end=now, figures=figures,
                        units=self.unit_results())
        dossier_gates = [g for g in self.gates if g.metric in DOSSIER_METRICS and g.metric in figures]
        measured = dict(zip(map(id, dossier_gates), measure_all(dossier_gates, data)))
        out: list[GateResult | None] = []
        for gate in self.gates:
            value: tuple[float | None, str] | None = None
            if id(gate) in by_gate:
                value = by_gate[id(gate)].value(now)
            elif id(gate) in measured and not gate.uses_baseline:
                value = measured[id(gate)]
            if value is None or value[0] is None:
                out.append(None)
            else:
                out.append(judge(gate, value[0], value[1], baseline=None, baseline_name=None))
        return out
