"""A reference system's ``/metrics``: a `prometheus_client` collector over what the system already counts.

`SystemFigures` is one look at a system, taken by ``GET /metrics``
(`rehearsal.portal.ops`) from the same sources as ``/api/stats``: active
sessions by role and each route's request timings (`LiveView`, every process
of the system gathered), dossiers by status and by unit (the database), the
link's outbox and agent on a provincial system, the feed's head on the
national portal. `SystemCollector` turns it into ``portal_*`` metrics, each
with a ``system`` label (``national``, ``hcmc``, ``city``, ``brvt``,
``binh-duong``: the names the harness gives them; a former province's front
door carries its system's name, as the harness counts it), and `exposition`
writes them in Prometheus's text format. The request histogram's bounds are
the harness exporter's (5 ms to 60 s, `live.PROM_BUCKETS`), counted exactly
as each call is timed. ``docs/metrics.md`` lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .live import PROM_BUCKETS, Timing

__all__ = ["CONTENT_TYPE", "SystemCollector", "SystemFigures", "exposition", "system_label"]

#: The media type of the text format `exposition` writes.
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The link's figures of ``/api/stats`` (its ``link`` block) as gauges: key, metric, help.
LINK_GAUGES = (
    ("outbox_pending", "portal_link_outbox_pending", "Outbox rows not acknowledged by the national portal yet."),
    ("outbox_oldest_s", "portal_link_outbox_oldest_seconds", "Age of the oldest row not acknowledged (0: none)."),
    ("outbox_dead", "portal_link_outbox_dead", "Rows left aside after too many refusals (they hold nothing up)."),
    ("feed_behind", "portal_link_feed_behind", "National feed items the link has not pulled yet."),
)
#: ... and as counters (they only grow while the database lives; the agent's restarts while the process does).
LINK_COUNTERS = (
    ("outbox_acked", "portal_link_outbox_acked", "Outbox rows the national portal acknowledged."),
    ("pushes_failed", "portal_link_pushes_failed", "Pushes to the national portal that failed."),
    ("agent_restarts", "portal_link_agent_restarts", "Times the link agent was started again after it exited."),
)


def system_label(api: str, system: str, name: str, face: str) -> str:
    """The ``system`` label of an app: its name as the harness knows it (hcmc's front door is ``city``)."""
    if api == "city":
        return "city" if name == "hcmc" else name
    if system == "portal":  # the single portal of old: the face it shows (national, legacy)
        return face
    return name


@dataclass
class SystemFigures:
    """One look at a system: what ``/api/stats`` shows, with every process of the system counted."""

    system: str
    sessions_by_role: Mapping[str, int]
    window_s: float
    dossiers_by_status: Mapping[str, int]
    dossiers_by_unit: Mapping[str, Mapping[str, int]]
    timings: Mapping[str, Timing]
    uptime_s: float
    processes: int = 1
    listeners: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)
    """The system's own block of ``/api/stats``: ``feed_seq`` (national), ``link`` (provincial)."""


def _histogram(t: Timing) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs of a route's timings; ``+Inf`` is every call."""
    out, seen = [], 0
    for le, n in zip(PROM_BUCKETS, t.prom):
        seen += n
        out.append((str(le), float(seen)))
    out.append(("+Inf", float(t.count)))
    return out


class SystemCollector(Collector):
    """The ``portal_*`` metrics of one `SystemFigures`."""

    def __init__(self, figures: SystemFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        # A metric with nothing to say is left out rather than sent empty (the harness exporter's rule).
        return (family for family in self._families() if family.samples)

    def _families(self) -> Iterator[Metric]:
        f = self.figures
        s = [f.system]
        g = GaugeMetricFamily

        sessions = g("portal_sessions_active", "Sessions with a request in the active window, by role.",
                     labels=["system", "role"])
        for role, n in sorted(f.sessions_by_role.items()):
            sessions.add_metric([f.system, role], n)
        yield sessions
        yield _one(g("portal_sessions_window_seconds", "How recent a session's last request must be to count as "
                     "active.", labels=["system"]), s, f.window_s)
        yield from self._dossiers()
        yield from self._requests()
        yield from self._link()
        if "feed_seq" in f.extra:
            yield _one(g("portal_feed_seq", "The national feed's last sequence number (what the links pull).",
                         labels=["system"]), s, f.extra["feed_seq"])
        yield _one(g("portal_uptime_seconds", "Seconds since the system started.", labels=["system"]), s, f.uptime_s)
        yield _one(g("portal_processes", "Processes serving the system (--processes).", labels=["system"]), s,
                   f.processes)
        yield _one(g("portal_listeners", "Ports the system listens on (--listeners).", labels=["system"]), s,
                   f.listeners)

    def _dossiers(self) -> Iterator[Metric]:
        f = self.figures
        by_status = GaugeMetricFamily("portal_dossiers", "Dossiers by status code (1-10).", labels=["system", "status"])
        for status, n in sorted(f.dossiers_by_status.items(), key=lambda x: int(x[0])):
            by_status.add_metric([f.system, status], n)
        yield by_status
        by_unit = GaugeMetricFamily("portal_unit_dossiers", "Dossiers per unit: submitted, complete (result returned).",
                                    labels=["system", "unit", "state"])
        for unit, counts in sorted(f.dossiers_by_unit.items()):
            for state in ("submitted", "complete"):
                by_unit.add_metric([f.system, unit, state], counts.get(state) or 0)
        yield by_unit

    def _requests(self) -> Iterator[Metric]:
        f = self.figures
        duration = HistogramMetricFamily("portal_request_duration_seconds",
                                         "Server-side request time per route, every process of the system.",
                                         labels=["system", "endpoint"])
        errors = CounterMetricFamily("portal_request_errors", "Calls answered with a 5xx, per route.",
                                     labels=["system", "endpoint"])
        for name, t in sorted(f.timings.items()):
            duration.add_metric([f.system, name], _histogram(t), sum_value=t.total_s)
            errors.add_metric([f.system, name], t.errors)
        yield duration
        yield errors

    def _link(self) -> Iterator[Metric]:
        f = self.figures
        link = f.extra.get("link")
        if not isinstance(link, Mapping):
            return
        s = [f.system]
        for key, name, doc in LINK_GAUGES:
            if link.get(key) is not None:
                yield _one(GaugeMetricFamily(name, doc, labels=["system"]), s, link[key])
        for key, name, doc in LINK_COUNTERS:
            if link.get(key) is not None and (key != "agent_restarts" or link.get("configured", True)):
                yield _one(CounterMetricFamily(name, doc, labels=["system"]), s, link[key])
        if link.get("configured", True):  # brvt and binh-duong run no agent: nothing to say about one
            yield _one(GaugeMetricFamily("portal_link_agent_alive", "1 while the link agent runs.",
                                         labels=["system"]), s, 1 if link.get("agent_alive") else 0)


def _one(family: GaugeMetricFamily | CounterMetricFamily, labels: list[str], value: float) -> Metric:
    family.add_metric(labels, float(value))
    return family


def exposition(figures: SystemFigures) -> bytes:
    """`figures` in Prometheus's text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SystemCollector(figures))
    return generate_latest(registry)
