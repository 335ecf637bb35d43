"""When a latency figure is mostly the harness's own: the gates judged on such a span, and the verdict line's note.

The generator's share of a latency figure is the client's figure minus the
server's for the same requests over the same span (`server_latency`:
`harness_gap`, bounds `BOUND_GAP_MS` and `BOUND_SHARE`). A stage's whole
figure over the bounds puts "latency mostly the harness's own" on the
verdict line and the report, as a starved harness does
(`rehearsal.results.starved`); a client latency gate (``p95_ms`` …) whose
judged span (the whole stage, its last D, its worst ``every`` window) is
over the bounds keeps its status but says so: ``harness_ms`` on its record
and a note in its detail. Gates on the server's figures (``server_p95_ms``)
are the system's own and are never marked.

The client's figure is the wire time where the kernel stamps answers
(`locustfiles.wire`), so a generator slow to read an answer that has arrived
is no longer in the gap; what stays is outside the server's own timing: a
request waiting in a busy server's socket before the server reads it (on a
machine the generator shares with the systems, the generator's CPU), the
kernels, the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

from ..plan.gate_language import Gate
from ..shared.formats import number
from .gates import GateData, GateResult
from .latency import Tally
from .server_latency import BOUND_GAP_MS, BOUND_SHARE, harness_gap, matches
from .starved import _judged_spans

#: Client gates whose figure is a latency the server also has (counts and rates are not the generator's).
LATENCY_FIGURES = frozenset({"p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"})
NOTE = "latency mostly the harness's own"


def _figure(rows: Iterable[dict[str, Any]], metric: str, decoded: dict[int, HdrHistogram]) -> float | None:
    tally = Tally()
    for row in rows:
        histogram = decoded.get(id(row))
        if histogram is None:  # each row decoded once, however many gates look at it
            histogram = decoded[id(row)] = HdrHistogram.decode(row["hdr"])
        tally.add_row(row, histogram)
    return tally.figures()[metric] if tally.count else None


def span_gap(gate: Gate, data: GateData, a: float, b: float, decoded: dict[int, HdrHistogram] | None = None
             ) -> tuple[float | None, float | None, float | None, bool]:
    """(client, server, gap, over the bounds) of `gate`'s figure over the wall span [a, b], its filter applied."""
    decoded = {} if decoded is None else decoded
    client = _figure((r for r in data.latency_rows if a < float(r["t"]) <= b + 1e-6
                      and gate.matches_request(r["name"], r.get("tag"))), gate.metric, decoded)
    # The server's intervals start at epoch multiples, not with the client's: those that overlap the span count.
    server = _figure((r for r in data.server_rows if float(r["t0"]) < b and float(r["t"]) > a and matches(gate, r)),
                     gate.metric, decoded)
    gap, _, over = harness_gap(client, server)
    return client, server, gap, over


def mark_generator(gates: Sequence[Gate], results: list[GateResult], data: GateData) -> list[GateResult]:
    """`results` with every client latency gate judged on a span over the bounds marked (status unchanged)."""
    if data.server_unknown or not data.server_rows:
        return results
    by_name = {g.name: g for g in gates}
    decoded: dict[int, HdrHistogram] = {}
    out = []
    for r in results:
        gate = by_name.get(r.name)
        if gate is not None and gate.metric in LATENCY_FIGURES and r.status != "skipped":
            worst = max((span_gap(gate, data, a, b, decoded) for a, b in _judged_spans(gate, r.detail, data)),
                        key=lambda x: x[2] if x[2] is not None else float("-inf"), default=None)
            if worst is not None and worst[3]:
                client, server, gap, _ = worst
                note = (f"{NOTE}: client {client:,.1f} ms, server {server:,.1f} ms of the same requests "
                        f"(over {BOUND_GAP_MS:g} ms and {BOUND_SHARE:.0%} of the client's)")
                r = dataclasses.replace(r, harness_ms=gap, detail=f"{r.detail}; {note}" if r.detail else note)
        out.append(r)
    return out


def harness_note(stages: Iterable[dict[str, Any]]) -> str:
    """``latency mostly the harness's own: stage demo client p95 288 ms, server 3 ms`` over these stages; '' if none."""
    parts = []
    for s in stages:
        g = (s.get("server_latency") or {}).get("generator") or {}
        if g.get("over"):
            parts.append(f"{s.get('name')} client p95 {number(round(g['client_p95_ms'], 1))} ms, "
                         f"server {number(round(g['server_p95_ms'], 1))} ms")
    return f"{NOTE}: " + "; ".join(parts) if parts else ""
