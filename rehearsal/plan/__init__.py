"""The plan room: a scenario YAML read once at the edge, validated, and returned as typed frozen dataclasses.

`load_plan(path)` returns a `Plan` or raises one `PlanError` that names the
file, the line, the field and what was expected; ``docs/scenarios.md``
explains every field::

    scenarios/demo.yaml:14: stages[0].units.codes[2]: unknown unit code 99999 (expected one
    of the 168 codes of province 79; see 'rehearse wards')

Modules, one job each (arrows run down the list)::

    gate_language  the gate language: parse_gate, Gate, the metrics (imports no YAML)
    notation       how numbers and durations are written; parse_duration
    model          the frozen dataclasses (Plan, Stage, CitizenLoad, ...) and the limits
    nodes          reading YAML nodes: mapping, list, text, number, share, duration, ...
    units, citizens, officers, timeline (faults on a system, and the cutover), gates
                   the sections of a stage
    stage          one stage: its sections, then what only the whole stage can tell
    load           load_plan and describe_plan

Field paths count list items from 0. Durations are *simulated* time (the runner
divides them by the time scale; ``spawn_rate`` alone is wall-clock). Numbers
are plain decimals; ``96%`` means 0.96 where a share or a rate is expected.
``1_000`` and ``1,000`` are refused (YAML would read the first as 1000 and the
second as text), and so are ``yes``/``no`` where a number is expected. YAML
anchors and ``<<: *merge`` keys work as usual.

Why not pydantic. Issue #14 asked whether pydantic v2, with the YAML nodes'
line marks mapped onto its error locations, should carry most of the schema.
Tried on the officers section (strict models fed the loaded values, `loc`
mapped back to the composed nodes' lines), it keeps file:line for type and
range errors but not the rest of what the messages promise:

- YAML 1.1 has already decided by then: ``per_unit: 010`` arrives as 8 and
  ``poll_interval: 1:30`` as 90 and both *pass*; ``1_000`` arrives as 1000
  (the message must say "write 1000, not 1_000"); a key given twice arrives
  once, silently the last; ``<<`` merges happen before any line is known.
- Its messages ("Input should be a valid integer", "less than or equal to 20")
  would each need translating back to ours ("expected a whole number of at
  most 20 officers per unit; found 21", "found yes (YAML reads it as
  true/false)", "found '5', which is quoted text"), which needs the node.

Keeping them means feeding pydantic the nodes and validating every scalar in
a before-validator: our `nodes` readers, unchanged. What pydantic would then
carry is the key check (unknown, missing), which `nodes.read_mapping` does in
forty lines with did-you-mean, duplicate keys, merge keys and ``x-`` keys;
the cross-field rules (a ramp above users, a fault outside the stage, units
of an absence within the stage's, contradictory gates, a crowd too big for
its window) would be model validators raising our errors at our lines. So a
dependency and a translation layer for no message gained: the schema stays
walked by hand, small readers, one message per mistake.
"""

from ..errors import GateSyntaxError, PlanError
from .gate_language import (BACKLOG_METRICS, DOSSIER_METRICS, GATE_METRICS, GATE_OPS, LIVE_METRICS, RATE_METRICS,
                            REQUEST_METRICS, SESSION_METRICS, SYNC_LAG_METRICS, WINDOW_METRICS, Gate, parse_gate)
from .load import describe_plan, load_plan
from .model import (CUTOVER_FROM, DEFAULT_COMPLETION_TARGET, FAULT_KINDS, FAULT_SYSTEMS, MAX_ATTACHMENT_KB,
                    MAX_CITIZENS, MAX_OFFICERS_PER_UNIT, CitizenLoad, Cutover, OfficerLoad, Plan, RampStep, Stage,
                    StageFault, ThinkTime, UnitSelection)
from .notation import parse_duration

__all__ = [
    "load_plan", "describe_plan", "parse_duration",
    "Plan", "Stage", "CitizenLoad", "OfficerLoad", "ThinkTime", "UnitSelection", "RampStep", "StageFault", "Cutover",
    "FAULT_KINDS", "FAULT_SYSTEMS", "CUTOVER_FROM", "MAX_ATTACHMENT_KB", "MAX_CITIZENS", "MAX_OFFICERS_PER_UNIT",
    "DEFAULT_COMPLETION_TARGET",
    "Gate", "parse_gate", "GATE_METRICS", "RATE_METRICS", "REQUEST_METRICS", "SESSION_METRICS", "DOSSIER_METRICS",
    "SYNC_LAG_METRICS", "BACKLOG_METRICS", "WINDOW_METRICS", "LIVE_METRICS", "GATE_OPS",
    "PlanError", "GateSyntaxError",
]
