"""The gate language: one line that says what a stage (or the whole run) must meet.

A gate is ``METRIC[.BOUND][{FILTER, ...}] [over WINDOW] OP THRESHOLD``::

    completion_rate >= 96%
    p95_ms{name="POST /api/dossiers"} <= 800
    error_rate{tag=citizen} over every 5m < 1%
    sessions_peak_portal over last 30m >= 1000
    completion_rate{group=binh-duong} >= 96%
    p95_ms <= baseline * 1.10
    unsynced_dossiers == 0
    sync_lag_p95_s over every 10m <= 60s
    server_p95_ms{name="POST /api/dossiers"} over every 5m <= 200
    completion_rate.lower >= 96%
    completion_rate.lower{group=binh-duong} >= 90%

- **METRIC** is a key of `GATE_METRICS`.
- **BOUND** (completion rates only, `rehearsal.plan.gate_bounds`): ``.lower`` or
  ``.upper`` of the rate's 95 % interval instead of the rate, same filters.
- **FILTER** narrows what is counted. Requests (`REQUEST_METRICS`): ``name``
  (the request's name as in the report, ``METHOD /path``; ``*`` is a
  wildcard), ``method`` and ``tag`` (``citizen`` or ``officer``: who sent it).
  The systems' own time for the same requests (`SERVER_METRICS`,
  ``server_p95_ms`` …: `rehearsal.results.server_latency`) takes the same filters.
  Dossiers (`DOSSIER_METRICS`): ``group`` (former province: ``hcmc``,
  ``binh-duong``, ``ba-ria-vung-tau``), ``type`` (``phuong``, ``xa``,
  ``dac-khu``) and ``unit`` (an official code). Filters combine (AND).
- **WINDOW** (requests, sessions, sync lag and backlog only; simulated time, like
  every duration of a plan): ``whole`` (the default: the whole stage), ``last 10m`` (the
  stage's last ten minutes), ``every 5m`` (the stage cut into 5-minute
  windows from its start, a remainder shorter than one window joining the
  window before it: the *worst* window is the figure, so one bad spell fails
  the gate even if the average is fine).
- **OP** is one of `GATE_OPS`.
- **THRESHOLD** is a number (``96%`` = 0.96 for a rate), or ``baseline``,
  ``baseline * F``, ``baseline + N``, ``baseline - N``: the same figure in a
  stored baseline run (`rehearsal.results.baseline`). The sync lag metrics
  (`SYNC_LAG_METRICS`) are WALL seconds, like latency (the systems' speed; the
  link's own poll and backoff are compressed by the time scale): their numbers
  may carry a unit, ``60s``, ``1m``, ``1m30s``, ``500ms`` (all mean wall time,
  unlike a window's duration), and a plain number is seconds.

This module only parses; `rehearsal.results.gates` measures and judges. Parsing raises
`GateSyntaxError` (a `PlanError`, `rehearsal.errors`) with a message only: the plan
reader adds file, line and field.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass

from ..errors import GateSyntaxError
from ..shared.formats import duration as format_duration
from .gate_bounds import BOUNDS, INTERVAL_METRICS, metric_hint, parse_bound
from .notation import DECIMAL, did_you_mean, duration_seconds, has_separators
from .runbook import PHASES, RUNBOOK_DURATION_METRICS, RUNBOOK_METRICS

__all__ = ["GATE_METRICS", "RATE_METRICS", "REQUEST_METRICS", "SERVER_METRICS", "SESSION_METRICS", "DOSSIER_METRICS", "LIVE_METRICS",
           "SYNC_LAG_METRICS", "BACKLOG_METRICS", "WINDOW_METRICS", "INTERVAL_METRICS", "BOUNDS", "GATE_OPS", "SHAPE",
           "Gate", "GateSyntaxError",
           "parse_gate", "satisfiable"]

#: Metrics a gate can test, with what they mean (shared by the evaluator, the plan reader and the docs).
GATE_METRICS: dict[str, str] = {
    "completion_rate": "complete / (submitted - withdrawn) dossiers of the stage, counted at the grace's end (0..1)",
    "on_time_rate": "finished by the due time / finished (Decision 766 indicator 2.1, 0..1; withdrawn is not finished)",
    "sessions_peak_harness": "most sessions active at once, counted by the harness",
    "sessions_peak_portal": "most sessions active at once, counted by the portal",
    "requests": "requests sent",
    "rps": "requests per wall-clock second",
    "failures": "requests that failed",
    "error_rate": "failures / requests (0..1)",
    "p50_ms": "median response time, ms (HDR histogram, 3 significant digits)",
    "p90_ms": "90th percentile response time, ms",
    "p95_ms": "95th percentile response time, ms",
    "p99_ms": "99th percentile response time, ms",
    "max_ms": "slowest response, ms",
    "mean_ms": "mean response time, ms",
    "server_p50_ms": "median time the systems themselves took for the same requests (their GET /api/timings), ms",
    "server_p95_ms": "95th percentile of the systems' own time for the same requests, ms",
    "server_p99_ms": "99th percentile of the systems' own time for the same requests, ms",
    "lost_dossiers": "dossiers the harness got an ID for that the portal cannot show (must be 0)",
    "duplicated_dossiers": "submissions that became more than one dossier on the portal",
    "submitted_dossiers": "dossiers filed in the stage",
    "complete_dossiers": "dossiers of the stage complete (result returned) at the end of the grace",
    "withdrawn_dossiers": "dossiers of the stage stopped after their citizen asked to withdraw them (status 8)",
    "unsynced_dossiers": "dossiers whose status on the national portal differs from the provincial system's at the "
                         "end of the grace (citizens do not see what officers did)",
    "not_delivered_dossiers": "dossiers on the national portal that never reached the provincial system",
    "completion_rate_national": "completion_rate as citizens see it: the national portal's statuses (0..1)",
    "sync_lag_p50_s": "median sync lag per processing step: the national portal's receipt time minus the provincial "
                      "step's time, each system's own clock, wall seconds",
    "sync_lag_p95_s": "95th percentile sync lag per step, wall seconds",
    "sync_lag_max_s": "longest sync lag of a step, wall seconds",
    "sync_backlog_max": "most processing steps waiting in the provincial outbox at once (sampled every 2 s)",
    "interruption_s": "cutover: wall seconds from the first to the last failed request of the switch",
    "migration_found_rate": "cutover: dossiers open on the legacy portal found on the national one (0..1)",
    **RUNBOOK_METRICS,  # the cutover's runbook: `rehearsal.plan.runbook`
    "arrivals_dropped": "open model: arrivals that found every citizen of the pool busy",
}
#: Metrics that are rates from 0 to 1: a gate on them may be written as a percentage.
RATE_METRICS: frozenset[str] = frozenset({"completion_rate", "on_time_rate", "error_rate", "migration_found_rate",
                                          "completion_rate_national"})
#: Measured from the requests (HDR histograms per interval): filters name/method/tag, every window.
REQUEST_METRICS: frozenset[str] = frozenset({"requests", "rps", "failures", "error_rate", "p50_ms", "p90_ms",
                                             "p95_ms", "p99_ms", "max_ms", "mean_ms"})
#: The systems' own time for our requests (their ``/api/timings``, `rehearsal.results.server_latency`): the
#: filters and windows of the request metrics; known after the stage, so never live.
SERVER_METRICS: frozenset[str] = frozenset({"server_p50_ms", "server_p95_ms", "server_p99_ms"})
#: Measured from the 2-second time series: every window, no filter.
SESSION_METRICS: frozenset[str] = frozenset({"sessions_peak_harness", "sessions_peak_portal"})
#: Counted by reconciliation at the end of the stage: filters group/type/unit, whole stage only.
DOSSIER_METRICS: frozenset[str] = frozenset({"completion_rate", "on_time_rate", "submitted_dossiers",
                                             "complete_dossiers", "lost_dossiers", "withdrawn_dossiers",
                                             "unsynced_dossiers", "not_delivered_dossiers",
                                             "completion_rate_national"})
#: Lag per processing step, measured after the stage from both systems' records: every window, no filter;
#: wall seconds, written ``60s``, ``1m`` or a plain number.
SYNC_LAG_METRICS: frozenset[str] = frozenset({"sync_lag_p50_s", "sync_lag_p95_s", "sync_lag_max_s"})
#: The provincial outbox's pending rows, from the 2-second time series (``sync_backlog``): every window, no filter.
BACKLOG_METRICS: frozenset[str] = frozenset({"sync_backlog_max"})
#: Metrics a window (``over last D``, ``over every D``) applies to.
WINDOW_METRICS: frozenset[str] = (REQUEST_METRICS | SESSION_METRICS | SYNC_LAG_METRICS | BACKLOG_METRICS
                                   | SERVER_METRICS)
#: Known while the stage runs, so a gate on them may abort the stage (``abort_on_fail``).
LIVE_METRICS: frozenset[str] = REQUEST_METRICS | SESSION_METRICS
#: Comparison operators, longest first (the order the parser tries them).
GATE_OPS: tuple[str, ...] = ("<=", ">=", "==", "!=", "<", ">")
WINDOW_KINDS = ("whole", "last", "every")
REQUEST_FILTERS = ("name", "method", "tag")
DOSSIER_FILTERS = ("group", "type", "unit")
TAGS = ("citizen", "officer")
GROUPS = ("hcmc", "binh-duong", "ba-ria-vung-tau")
UNIT_TYPES = ("phuong", "xa", "dac-khu")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

SHAPE = "'metric[{filter=value}] [over whole|last D|every D] op threshold', like 'completion_rate >= 96%'"

_HEAD = re.compile(r"(?P<metric>[A-Za-z_][A-Za-z0-9_]*)(?:\.(?P<bound>[A-Za-z_][A-Za-z0-9_]*))?\s*"
                   r"(?:\{(?P<filters>[^{}]*)\})?(?:\.(?P<bound_after>[A-Za-z_][A-Za-z0-9_]*))?\s*"
                   r"(?:\bover\s+(?P<window>[^\s<>=!]+(?:\s+[^\s<>=!]+)?)\s*)?"
                   r"(?P<op>=>|=<|<>|<=|>=|==|!=|<|>|=)\s*(?P<rhs>.*)")
_SLIP_FIX = {"=": "==", "=>": ">=", "=<": "<=", "<>": "!="}
_FILTER = re.compile(r"\s*([A-Za-z_]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^,\"']*?))\s*(?:,|$)")
_BASELINE = re.compile(r"baseline\s*(?:(?P<op>[*+-])\s*(?P<arg>.+))?")


@dataclass(frozen=True)
class Gate:
    """A threshold a stage (or the run) must meet."""

    expr: str
    """As written, e.g. ``p95_ms{name="POST /api/dossiers"} over every 5m <= 800``."""
    metric: str
    """A key of `GATE_METRICS`."""
    op: str
    """One of `GATE_OPS`."""
    threshold: float
    """The number, percentages already divided by 100; NaN for a baseline gate."""
    name: str
    """The name given in the file, else `expr`."""
    filters: tuple[tuple[str, str], ...] = ()
    """(key, value) pairs, sorted by key."""
    window: str = "whole"
    """``whole``, ``last`` or ``every``."""
    window_s: float = 0.0
    """Simulated seconds of a ``last`` / ``every`` window."""
    baseline_op: str | None = None
    """None: a fixed threshold; ``=`` the baseline's figure; ``*``, ``+``, ``-``: with `baseline_arg`."""
    baseline_arg: float = 0.0
    abort_on_fail: bool = False
    """Stop the stage (and the run) as soon as this gate fails, once `abort_grace_s` has passed."""
    abort_grace_s: float = 0.0
    """Simulated seconds from the start of the stage before an abort may happen."""
    bound: str | None = None
    """``lower`` / ``upper``: the bound of the rate's 95 % interval is judged, not the rate (`INTERVAL_METRICS`)."""
    on_fail: str = "nogo"
    """What a failure does besides NO-GO: ``nogo`` nothing more, ``abort`` stop the stage (`abort_on_fail`),
    ``rollback`` roll the cutover back when it fails live after the switch (`rehearsal.plan.runbook`)."""

    @property
    def key(self) -> str:
        """What is measured, without the comparison: the name of the figure in a baseline file."""
        out = self.metric + (f".{self.bound}" if self.bound else "")
        if self.filters:
            out += "{" + ",".join(f'{k}="{v}"' for k, v in self.filters) + "}"
        if self.window != "whole":
            out += f" over {self.window} {format_duration(self.window_s)}"
        return out

    @property
    def uses_baseline(self) -> bool:
        return self.baseline_op is not None

    def threshold_from(self, baseline: float) -> float:
        """The threshold this gate sets, given the baseline's figure."""
        if self.baseline_op == "*":
            return baseline * self.baseline_arg
        if self.baseline_op == "+":
            return baseline + self.baseline_arg
        if self.baseline_op == "-":
            return baseline - self.baseline_arg
        return baseline

    def filter(self, key: str) -> str | None:
        return dict(self.filters).get(key)

    def matches_request(self, name: str, tag: str | None) -> bool:
        """Whether a request row (``METHOD /path`` and who sent it) is one this gate counts."""
        want = dict(self.filters)
        if "name" in want and not (name == want["name"] or fnmatch.fnmatchcase(name, want["name"])):
            return False
        if "method" in want and name.split(" ", 1)[0] != want["method"]:
            return False
        return "tag" not in want or tag == want["tag"]


def _number(text: str, metric: str, *, what: str, unit_ok: bool = True) -> float:
    """A number as a gate writes it: plain decimal, a percentage for a rate, no thousands separators."""
    text = text.strip()
    if has_separators(text):
        raise GateSyntaxError(f"expected {SHAPE} with the number written without separators: "
                              f"{text.replace('_', '').replace(',', '')}, not {text}")
    if unit_ok and metric in SYNC_LAG_METRICS and text and not DECIMAL.fullmatch(text) and not text.endswith("%"):
        return _wall_seconds(text, what=what)
    if unit_ok and metric in RUNBOOK_DURATION_METRICS and duration_seconds(text) is not None:
        return float(duration_seconds(text) or 0.0)  # the runbook's times: simulated, written like the plan's
    digits, scale = text, 1.0
    if text.endswith("%"):
        if metric not in RATE_METRICS:
            raise GateSyntaxError(f"a percentage is only allowed for a rate ({', '.join(sorted(RATE_METRICS))}); "
                                  f"{metric} is a count or a time: found {text!r}")
        digits, scale = text[:-1].rstrip(), 100.0
    if not DECIMAL.fullmatch(digits):
        raise GateSyntaxError(f"expected {what}; found {text!r}")
    value = float(digits) / scale
    if not math.isfinite(value):
        raise GateSyntaxError(f"expected a finite number; found {text!r}")
    return value


def _wall_seconds(text: str, *, what: str) -> float:
    """A sync lag threshold written with a unit: ``500ms``, ``60s``, ``1m``, ``1m30s`` (wall seconds)."""
    if text.endswith("ms") and DECIMAL.fullmatch(text[:-2].strip()):
        return float(text[:-2].strip()) / 1000
    seconds = duration_seconds(text.replace(" ", ""))
    if seconds is None:
        raise GateSyntaxError(f"expected {what}: wall seconds like 60, 60s, 1m, 1m30s or 500ms; found {text!r}")
    return seconds


def _duration(text: str) -> float:
    seconds = duration_seconds(text)
    if seconds is None:
        raise GateSyntaxError(f"expected a window duration like 5m, 30m, 1h or 90s; found {text!r}")
    if seconds <= 0:
        raise GateSyntaxError(f"a window must be longer than 0; found {text!r}")
    return seconds


def _filters(text: str, metric: str) -> tuple[tuple[str, str], ...]:
    if metric in REQUEST_METRICS or metric in SERVER_METRICS:
        allowed = REQUEST_FILTERS
    elif metric in DOSSIER_METRICS:
        allowed = DOSSIER_FILTERS
    elif metric == "cutover_phase_s":
        allowed = ("phase",)  # which phase of the runbook (`rehearsal.plan.runbook.PHASES`)
    elif metric in SYNC_LAG_METRICS | BACKLOG_METRICS:
        raise GateSyntaxError(f"{metric} takes no filter: it is measured over every processing step of the stage "
                              f"(windows apply: 'over last 10m', 'over every 5m')")
    else:
        raise GateSyntaxError(f"{metric} takes no filter (filters apply to requests: "
                              f"{', '.join(sorted(REQUEST_METRICS))}; and to dossiers: "
                              f"{', '.join(sorted(DOSSIER_METRICS))})")
    out: dict[str, str] = {}
    pos, text = 0, text.strip()
    if not text:
        raise GateSyntaxError(f"an empty filter {{}} on {metric}: write {{{allowed[0]}=...}} or leave the braces out")
    while pos < len(text):
        m = _FILTER.match(text, pos)
        if not m or m.end() == pos:
            raise GateSyntaxError(f"expected filters like {{{allowed[0]}=value, ...}}; found {{{text}}}")
        key = m.group(1)
        value = next(g for g in (m.group(2), m.group(3), m.group(4)) if g is not None).strip()
        pos = m.end()
        if key not in allowed:
            raise GateSyntaxError(f"unknown filter {key!r} for {metric} ({did_you_mean(key, allowed)})")
        if key in out:
            raise GateSyntaxError(f"filter {key!r} is given twice")
        if not value:
            raise GateSyntaxError(f"filter {key!r} has no value")
        out[key] = _filter_value(key, value)
    return tuple(sorted(out.items()))


def _filter_value(key: str, value: str) -> str:
    choices = {"tag": TAGS, "group": GROUPS, "type": UNIT_TYPES, "method": HTTP_METHODS, "phase": PHASES}.get(key)
    if key == "method":
        value = value.upper()
    if choices is not None and value not in choices:
        raise GateSyntaxError(f"unknown {key} {value!r} ({did_you_mean(value, choices)})")
    if key == "unit" and not value.isdigit():
        raise GateSyntaxError(f"expected an official unit code (digits, see 'rehearse wards'); found {value!r}")
    if key == "name" and " " not in value and value != "*":
        raise GateSyntaxError(f"expected a request name as the report shows it, 'METHOD /path' like "
                              f"'POST /api/dossiers' ('*' is a wildcard); found {value!r}")
    return value


def parse_gate(expr: str, *, name: str | None = None, abort_on_fail: bool = False,
               abort_grace_s: float = 0.0) -> Gate:
    """A `Gate` from its expression; `GateSyntaxError` says what is wrong."""
    expr = expr.strip()
    m = _HEAD.fullmatch(expr)
    if not m:
        raise GateSyntaxError(f"expected {SHAPE}; found {expr!r}")
    metric, op, rhs = m.group("metric"), m.group("op"), m.group("rhs").strip()
    if metric not in GATE_METRICS:
        raise GateSyntaxError(f"unknown gate metric {metric!r} ({metric_hint(metric, list(GATE_METRICS))})")
    bound = parse_bound(metric, m.group("bound"), m.group("bound_after"))
    if op in _SLIP_FIX:
        raise GateSyntaxError(f"unknown operator {op!r} in {expr!r} (did you mean {_SLIP_FIX[op]!r}?)")
    filters = _filters(m.group("filters"), metric) if m.group("filters") is not None else ()
    window, window_s = "whole", 0.0
    if m.group("window"):
        parts = m.group("window").split()
        window = parts[0]
        if window not in WINDOW_KINDS:
            raise GateSyntaxError(f"expected a window 'over whole', 'over last 10m' or 'over every 5m'; "
                                  f"found 'over {m.group('window')}'")
        if window == "whole":
            if len(parts) > 1:
                raise GateSyntaxError(f"'over whole' takes no duration; found 'over {m.group('window')}'")
        else:
            if len(parts) < 2:
                raise GateSyntaxError(f"'over {window}' needs a duration, like 'over {window} 5m'")
            window_s = _duration(parts[1])
        if window != "whole" and metric not in WINDOW_METRICS:
            raise GateSyntaxError(f"{metric} is counted once, at the end of the stage: a window "
                                  f"('over {window} ...') only applies to requests and sessions (and to the "
                                  f"sync lag and backlog)")
    if not rhs:
        raise GateSyntaxError(f"expected a number after {op!r} in {SHAPE}; found nothing")
    baseline_op, baseline_arg, threshold = None, 0.0, math.nan
    b = _BASELINE.fullmatch(rhs)
    if b:
        baseline_op = b.group("op") or "="
        if b.group("arg") is not None:
            arg = b.group("arg").strip()
            if baseline_op == "*" and arg.endswith("%"):  # baseline * 110% is baseline * 1.10
                baseline_arg = _number(arg[:-1], metric, what="a factor after 'baseline *'", unit_ok=False) / 100
            else:
                baseline_arg = _number(arg, metric, what=f"a number after 'baseline {baseline_op}'",
                                       unit_ok=baseline_op != "*")
            if baseline_op == "*" and baseline_arg <= 0:
                raise GateSyntaxError(f"expected a factor greater than 0 after 'baseline *'; found {b.group('arg')!r}")
    elif rhs.startswith("baseline"):
        raise GateSyntaxError(f"expected 'baseline', 'baseline * F', 'baseline + N' or 'baseline - N'; found {rhs!r}")
    else:
        threshold = _number(rhs, metric, what=f"a number after {op!r} in {SHAPE}")
        if metric in RATE_METRICS and not 0 <= threshold <= 1:
            raise GateSyntaxError(f"{metric} is a rate from 0 to 1: write 0.96 or 96%, not {rhs}")
    if abort_on_fail and metric not in LIVE_METRICS:
        raise GateSyntaxError(f"abort_on_fail needs a metric measured while the stage runs "
                              f"({', '.join(sorted(LIVE_METRICS))}); {metric} is counted at the end")
    return Gate(expr=expr, metric=metric, op=op, threshold=threshold, name=name or expr, filters=filters,
                window=window, window_s=window_s, baseline_op=baseline_op, baseline_arg=baseline_arg,
                abort_on_fail=abort_on_fail, abort_grace_s=abort_grace_s, bound=bound)


def satisfiable(gates: list[Gate]) -> bool:
    """Whether some value passes every fixed-threshold gate (all measuring one figure)."""
    gates = [g for g in gates if not g.uses_baseline]
    low, low_incl, high, high_incl = -math.inf, True, math.inf, True
    for g in gates:
        t = g.threshold
        if g.op in (">", ">=", "==") and (t > low or (t == low and g.op == ">")):
            low, low_incl = t, g.op != ">"
        if g.op in ("<", "<=", "==") and (t < high or (t == high and g.op == "<")):
            high, high_incl = t, g.op != "<"
    if low > high or (low == high and not (low_incl and high_incl)):
        return False
    return not (low == high and any(g.op == "!=" and g.threshold == low for g in gates))
