"""The run's figures where ops teams look: Prometheus metrics read from the run directory.

`RunCollector` (`collector`) turns a run directory into ``rehearsal_*``
metrics at each scrape, live or finished, from what the stages wrote
(`reading`) and ``summary.json``; `serve_metrics` (`serving`) serves them
with `prometheus_client`. ``docs/metrics.md`` lists every metric; the
Grafana dashboard and Prometheus configuration that read them are in
``examples/grafana/`` and ``examples/prometheus/``.
"""

from __future__ import annotations

from .collector import RunCollector
from .serving import MetricsServer, new_run_in, parse_bind, serve_metrics

__all__ = ["RunCollector", "MetricsServer", "new_run_in", "parse_bind", "serve_metrics"]
