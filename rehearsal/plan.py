"""The rehearsal plan: a scenario YAML, validated once, as frozen dataclasses.

`load_plan(path)` reads a scenario file and returns a `Plan`, or raises a
`PlanError` that names the file, the line, the field and what was expected::

    scenarios/demo.yaml:14: stages[0].units.codes[2]: unknown unit code 99999
    (expected one of the 168 codes of province 79; see 'rehearse wards')

The YAML is composed into nodes first, so every value keeps its line; the
schema below is then walked by hand (small, explicit, no magic). The full
schema with comments is in ``docs/scenarios.md``. Durations are strings like
``90s``, ``30m``, ``2h``, ``1h30m`` or plain numbers of seconds, and are
*simulated* time: the runner divides them by the time scale.
"""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import PlanError
from .wards import FormerProvince, UnitType, load_units, units_by_code

#: Metrics a gate can test, with what they mean (shared by the evaluator and docs).
GATE_METRICS: dict[str, str] = {
    "completion_rate": "complete ÷ submitted dossiers of the stage, counted at the end of the grace (0..1)",
    "on_time_rate": "finished by the due time ÷ finished (Decision 766 indicator 2.1, 0..1)",
    "sessions_peak_harness": "most sessions active at once, counted by the harness",
    "sessions_peak_portal": "most sessions active at once, counted by the portal",
    "requests": "requests sent",
    "failures": "requests failed",
    "error_rate": "failures ÷ requests (0..1)",
    "p50_ms": "median response time of all requests, ms",
    "p95_ms": "95th percentile response time, ms",
    "p99_ms": "99th percentile response time, ms",
    "max_ms": "slowest response, ms",
    "lost_dossiers": "dossiers the harness got an ID for that the portal cannot show",
    "duplicated_dossiers": "submissions that became more than one dossier",
    "submitted_dossiers": "dossiers filed in the stage",
    "complete_dossiers": "dossiers of the stage complete at the end of the grace",
}
GATE_OPS = ("<=", ">=", "==", "!=", "<", ">")

MAX_OFFICERS_PER_UNIT = 20
MAX_CITIZENS = 100_000
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")
_GATE = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)(%?)\s*$")


@dataclass(frozen=True)
class ThinkTime:
    """A think time drawn uniformly between two simulated durations."""

    low_s: float
    high_s: float


@dataclass(frozen=True)
class UnitSelection:
    """How a stage chose its units (as written in the file)."""

    former_provinces: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    codes: tuple[int, ...] = ()
    exclude: tuple[int, ...] = ()
    sample: int | None = None


@dataclass(frozen=True)
class CitizenLoad:
    """The citizens of a stage (a closed model: a fixed crowd of users)."""

    users: int
    spawn_rate: float
    """Users started per wall-clock second."""
    think_time: ThinkTime
    other_unit_share: float = 0.1
    """Share of dossiers filed at another unit than the citizen's own."""
    attachment_kb: tuple[int, int] = (2, 16)
    follow_interval_s: float = 600.0
    """Simulated seconds between a citizen's checks of their dossier."""


@dataclass(frozen=True)
class OfficerLoad:
    """The officers of a stage: ``per_unit`` accounts at each unit."""

    per_unit: int = 2
    think_time: ThinkTime = ThinkTime(30.0, 90.0)
    """One step on one dossier."""
    poll_interval_s: float = 60.0
    """How long an officer waits before looking at an empty queue again."""
    supplement_share: float = 0.05
    refuse_share: float = 0.02
    sign_in_lead_s: float = 0.0
    """Officers sign in this long before citizens arrive."""


@dataclass(frozen=True)
class Gate:
    """A threshold: ``metric op threshold``."""

    expr: str
    metric: str
    op: str
    threshold: float
    name: str


@dataclass(frozen=True)
class Stage:
    """One trial run of the plan."""

    name: str
    description: str
    units: tuple[int, ...]
    """Official codes of the units taking part, sorted."""
    unit_selection: UnitSelection
    duration_s: float
    """Simulated filing window."""
    grace_s: float
    """Simulated time after the window: nobody files, officers keep working; completion is counted at its end."""
    citizens: CitizenLoad
    officers: OfficerLoad
    gates: tuple[Gate, ...]


@dataclass(frozen=True)
class Plan:
    """A whole scenario."""

    name: str
    description: str
    target: str
    time_scale: float
    seed: int
    stages: tuple[Stage, ...]
    source: Path

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise PlanError(f"unknown stage {name!r} (expected one of: {', '.join(s.name for s in self.stages)})",
                        file=str(self.source))

    def wall_s(self, simulated_s: float) -> float:
        return simulated_s / self.time_scale


# -- reading -------------------------------------------------------------------

class _Ctx:
    """Where we are in the file, for error messages."""

    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, node: yaml.Node | None, field: str, message: str) -> PlanError:
        line = node.start_mark.line + 1 if node is not None else None
        return PlanError(message, file=self.file, line=line, field=field or None)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = node.value
    return "nothing" if value in ("", "~", "null") else f"{value!r}"


def _mapping(ctx: _Ctx, node: yaml.Node, field: str, allowed: tuple[str, ...],
             required: tuple[str, ...] = ()) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise ctx.error(node, field, f"expected a mapping with keys {', '.join(allowed)}; found {_kind(node)}")
    out: dict[str, yaml.Node] = {}
    for key_node, value in node.value:
        key = str(key_node.value)
        where = f"{field}.{key}" if field else key
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
            raise ctx.error(key_node, where, f"unknown key {key!r} ({hint})")
        if key in out:
            raise ctx.error(key_node, where, "key given twice")
        out[key] = value
    for key in required:
        if key not in out:
            raise ctx.error(node, f"{field}.{key}" if field else key, "missing (required)")
    return out


def _scalar(ctx: _Ctx, node: yaml.Node, field: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.error(node, field, f"expected a single value; found {_kind(node)}")
    return yaml.safe_load(yaml.serialize(node))


def _str(ctx: _Ctx, node: yaml.Node, field: str, *, slug: bool = False) -> str:
    value = _scalar(ctx, node, field)
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(node, field, f"expected text; found {_kind(node)}")
    if slug and not _SLUG.match(value):
        raise ctx.error(node, field, f"expected a lowercase name of letters, digits and '-'; found {value!r}")
    return value.strip()


def _number(ctx: _Ctx, node: yaml.Node, field: str, *, integer: bool = False, minimum: float | None = None,
            maximum: float | None = None, positive: bool = False) -> float:
    value = _scalar(ctx, node, field)
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ctx.error(node, field, f"expected {kind}; found {_kind(node)}")
    if positive and value <= 0:
        raise ctx.error(node, field, f"expected {kind} greater than 0; found {value}")
    if minimum is not None and value < minimum:
        raise ctx.error(node, field, f"expected {kind} of at least {minimum:g}; found {value}")
    if maximum is not None and value > maximum:
        raise ctx.error(node, field, f"expected {kind} of at most {maximum:g}; found {value}")
    return value


def _share(ctx: _Ctx, node: yaml.Node, field: str) -> float:
    return float(_number(ctx, node, field, minimum=0, maximum=1))


def parse_duration(value: Any, *, where: str = "duration") -> float:
    """Seconds from ``90s``, ``30m``, ``2h``, ``1h30m``, ``1.5h`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 30m, 2h or 1h30m; found {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    if not isinstance(value, str) or not value.strip() or not match or not any(match.groups()):
        raise ValueError(f"expected a duration like 90s, 30m, 2h or 1h30m; found {value!r}")
    h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s


def _duration(ctx: _Ctx, node: yaml.Node, field: str, *, allow_zero: bool = False) -> float:
    try:
        seconds = parse_duration(_scalar(ctx, node, field), where=field)
    except ValueError as exc:
        raise ctx.error(node, field, str(exc)) from None
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ctx.error(node, field, f"expected a duration {'of at least 0' if allow_zero else 'greater than 0'}; "
                                     f"found {_scalar(ctx, node, field)!r}")
    return seconds


def _think_time(ctx: _Ctx, node: yaml.Node, field: str) -> ThinkTime:
    if isinstance(node, yaml.SequenceNode):
        if len(node.value) != 2:
            raise ctx.error(node, field, f"expected [low, high] (two durations); found {len(node.value)} values")
        low = _duration(ctx, node.value[0], f"{field}[0]", allow_zero=True)
        high = _duration(ctx, node.value[1], f"{field}[1]", allow_zero=True)
        if low > high:
            raise ctx.error(node, field, f"expected low ≤ high; found {low:g} s > {high:g} s")
        return ThinkTime(low, high)
    seconds = _duration(ctx, node, field, allow_zero=True)
    return ThinkTime(seconds, seconds)


def _list(ctx: _Ctx, node: yaml.Node, field: str) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise ctx.error(node, field, f"expected a list; found {_kind(node)}")
    return list(node.value)


def _units(ctx: _Ctx, node: yaml.Node | None, field: str, rng: random.Random) -> tuple[tuple[int, ...], UnitSelection]:
    if node is None:
        return tuple(u.code for u in load_units()), UnitSelection()
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return tuple(u.code for u in load_units()), UnitSelection()
    m = _mapping(ctx, node, field, ("former_province", "type", "codes", "exclude", "sample"))
    known = units_by_code()

    def choices(key: str, allowed: list[str]) -> tuple[str, ...]:
        if key not in m:
            return ()
        out = []
        for i, item in enumerate(_list(ctx, m[key], f"{field}.{key}")):
            value = _scalar(ctx, item, f"{field}.{key}[{i}]")
            if value not in allowed:
                close = difflib.get_close_matches(str(value), allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ctx.error(item, f"{field}.{key}[{i}]",
                                f"unknown {key.replace('_', ' ')} {value!r} (expected one of: {', '.join(allowed)}){hint}")
            out.append(value)
        return tuple(out)

    def codes(key: str) -> tuple[int, ...]:
        if key not in m:
            return ()
        out = []
        for i, item in enumerate(_list(ctx, m[key], f"{field}.{key}")):
            code = _number(ctx, item, f"{field}.{key}[{i}]", integer=True)
            if code not in known:
                raise ctx.error(item, f"{field}.{key}[{i}]", f"unknown unit code {code} (expected one of the 168 "
                                                             f"codes of province 79; see 'rehearse wards')")
            out.append(int(code))
        return tuple(out)

    selection = UnitSelection(
        former_provinces=choices("former_province", [v.value for v in FormerProvince]),
        types=choices("type", [v.value for v in UnitType]),
        codes=codes("codes"), exclude=codes("exclude"),
        sample=int(_number(ctx, m["sample"], f"{field}.sample", integer=True, positive=True))
        if "sample" in m else None)
    filtered = selection.former_provinces or selection.types or not selection.codes
    chosen = {u.code for u in load_units()
              if (not selection.former_provinces or u.former_province.value in selection.former_provinces)
              and (not selection.types or u.type.value in selection.types)} if filtered else set()
    chosen |= set(selection.codes)
    chosen -= set(selection.exclude)
    if not chosen:
        raise ctx.error(node, field, "the selection picks no unit (expected at least one)")
    if selection.sample is not None:
        if selection.sample > len(chosen):
            raise ctx.error(m["sample"], f"{field}.sample",
                            f"expected at most {len(chosen)} (the units the filters chose); found {selection.sample}")
        chosen = set(rng.sample(sorted(chosen), selection.sample))
    return tuple(sorted(chosen)), selection


def _gate(ctx: _Ctx, node: yaml.Node, field: str) -> Gate:
    name = None
    expr_node = node
    if isinstance(node, yaml.MappingNode):
        m = _mapping(ctx, node, field, ("name", "expr"), required=("expr",))
        name = _str(ctx, m["name"], f"{field}.name") if "name" in m else None
        expr_node = m["expr"]
        field = f"{field}.expr"
    expr = _str(ctx, expr_node, field)
    match = _GATE.match(expr)
    if not match:
        raise ctx.error(expr_node, field, f"expected 'metric op number' like 'completion_rate >= 0.96' "
                                          f"(op one of {' '.join(GATE_OPS)}); found {expr!r}")
    metric, op, number, pct = match.groups()
    if metric not in GATE_METRICS:
        close = difflib.get_close_matches(metric, list(GATE_METRICS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(GATE_METRICS)}"
        raise ctx.error(expr_node, field, f"unknown metric {metric!r} ({hint})")
    threshold = float(number) / (100 if pct else 1)
    return Gate(expr=expr.strip(), metric=metric, op=op, threshold=threshold, name=name or expr.strip())


def _contradictions(ctx: _Ctx, gates: list[tuple[Gate, yaml.Node]], field: str) -> None:
    """Refuse gates on one metric that no value can pass together."""
    by_metric: dict[str, list[tuple[Gate, yaml.Node]]] = {}
    for gate, node in gates:
        by_metric.setdefault(gate.metric, []).append((gate, node))
    for metric, items in by_metric.items():
        low, low_incl, high, high_incl = float("-inf"), True, float("inf"), True
        for gate, _ in items:
            t = gate.threshold
            if gate.op in (">", ">=", "==") and (t > low or (t == low and gate.op == ">")):
                low, low_incl = t, gate.op != ">"
            if gate.op in ("<", "<=", "==") and (t < high or (t == high and gate.op == "<")):
                high, high_incl = t, gate.op != "<"
        if low > high or (low == high and not (low_incl and high_incl)):
            exprs = " and ".join(repr(g.expr) for g, _ in items)
            raise ctx.error(items[-1][1], field, f"contradictory gates on {metric}: {exprs} cannot all pass")


def _stage(ctx: _Ctx, node: yaml.Node, field: str, rng: random.Random) -> Stage:
    m = _mapping(ctx, node, field, ("name", "description", "units", "duration", "grace", "citizens", "officers",
                                    "gates"), required=("name", "duration", "citizens"))
    name = _str(ctx, m["name"], f"{field}.name", slug=True)
    units, selection = _units(ctx, m.get("units"), f"{field}.units", rng)
    c = _mapping(ctx, m["citizens"], f"{field}.citizens",
                 ("users", "spawn_rate", "think_time", "other_unit_share", "attachment_kb", "follow_interval"),
                 required=("users", "spawn_rate", "think_time"))
    cf = f"{field}.citizens"
    attachment_kb = (2, 16)
    if "attachment_kb" in c:
        items = _list(ctx, c["attachment_kb"], f"{cf}.attachment_kb")
        if len(items) != 2:
            raise ctx.error(c["attachment_kb"], f"{cf}.attachment_kb", "expected [low, high] in KiB")
        lo = int(_number(ctx, items[0], f"{cf}.attachment_kb[0]", integer=True, minimum=0, maximum=64))
        hi = int(_number(ctx, items[1], f"{cf}.attachment_kb[1]", integer=True, minimum=0, maximum=64))
        if lo > hi:
            raise ctx.error(c["attachment_kb"], f"{cf}.attachment_kb", f"expected low ≤ high; found {lo} > {hi}")
        attachment_kb = (lo, hi)
    citizens = CitizenLoad(
        users=int(_number(ctx, c["users"], f"{cf}.users", integer=True, minimum=0, maximum=MAX_CITIZENS)),
        spawn_rate=float(_number(ctx, c["spawn_rate"], f"{cf}.spawn_rate", positive=True)),
        think_time=_think_time(ctx, c["think_time"], f"{cf}.think_time"),
        other_unit_share=_share(ctx, c["other_unit_share"], f"{cf}.other_unit_share")
        if "other_unit_share" in c else 0.1,
        attachment_kb=attachment_kb,
        follow_interval_s=_duration(ctx, c["follow_interval"], f"{cf}.follow_interval")
        if "follow_interval" in c else 600.0)
    officers = OfficerLoad()
    if "officers" in m:
        o = _mapping(ctx, m["officers"], f"{field}.officers",
                     ("per_unit", "think_time", "poll_interval", "supplement_share", "refuse_share", "sign_in_lead"))
        of = f"{field}.officers"
        officers = OfficerLoad(
            per_unit=int(_number(ctx, o["per_unit"], f"{of}.per_unit", integer=True, minimum=0,
                                 maximum=MAX_OFFICERS_PER_UNIT)) if "per_unit" in o else 2,
            think_time=_think_time(ctx, o["think_time"], f"{of}.think_time") if "think_time" in o
            else OfficerLoad.think_time,
            poll_interval_s=_duration(ctx, o["poll_interval"], f"{of}.poll_interval") if "poll_interval" in o else 60.0,
            supplement_share=_share(ctx, o["supplement_share"], f"{of}.supplement_share")
            if "supplement_share" in o else 0.05,
            refuse_share=_share(ctx, o["refuse_share"], f"{of}.refuse_share") if "refuse_share" in o else 0.02,
            sign_in_lead_s=_duration(ctx, o["sign_in_lead"], f"{of}.sign_in_lead", allow_zero=True)
            if "sign_in_lead" in o else 0.0)
    gates: list[tuple[Gate, yaml.Node]] = []
    if "gates" in m:
        for i, g in enumerate(_list(ctx, m["gates"], f"{field}.gates")):
            gates.append((_gate(ctx, g, f"{field}.gates[{i}]"), g))
        _contradictions(ctx, gates, f"{field}.gates")
    return Stage(name=name, description=_str(ctx, m["description"], f"{field}.description")
                 if "description" in m else "",
                 units=units, unit_selection=selection,
                 duration_s=_duration(ctx, m["duration"], f"{field}.duration"),
                 grace_s=_duration(ctx, m["grace"], f"{field}.grace", allow_zero=True) if "grace" in m else 0.0,
                 citizens=citizens, officers=officers, gates=tuple(g for g, _ in gates))


def load_plan(path: str | Path, *, time_scale: float | None = None) -> Plan:
    """Read and validate a scenario file; `time_scale` overrides the file's."""
    file = str(path)
    ctx = _Ctx(file)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError("no such file (expected a scenario YAML, e.g. scenarios/demo.yaml)", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlanError(f"cannot read the file: {reason}", file=file) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanError(f"not valid YAML: {problem}", file=file,
                        line=mark.line + 1 if mark else None) from None
    if root is None:
        raise PlanError("the file is empty (expected a scenario with name and stages)", file=file)
    m = _mapping(ctx, root, "", ("name", "description", "target", "time_scale", "seed", "stages"),
                 required=("name", "stages"))
    seed = int(_number(ctx, m["seed"], "seed", integer=True)) if "seed" in m else 1
    scale = float(_number(ctx, m["time_scale"], "time_scale", positive=True)) if "time_scale" in m else 1.0
    if time_scale is not None:
        if time_scale <= 0:
            raise PlanError(f"--time-scale: expected a number greater than 0; found {time_scale:g}", file=file)
        scale = float(time_scale)
    rng = random.Random(seed)
    stage_nodes = _list(ctx, m["stages"], "stages")
    if not stage_nodes:
        raise ctx.error(m["stages"], "stages", "expected at least one stage; found an empty list")
    stages, seen = [], set()
    for i, node in enumerate(stage_nodes):
        stage = _stage(ctx, node, f"stages[{i}]", rng)
        if stage.name in seen:
            raise ctx.error(node, f"stages[{i}].name", f"stage name {stage.name!r} is used twice (expected unique names)")
        seen.add(stage.name)
        stages.append(stage)
    return Plan(name=_str(ctx, m["name"], "name", slug=True),
                description=_str(ctx, m["description"], "description") if "description" in m else "",
                target=_str(ctx, m["target"], "target") if "target" in m else "reference",
                time_scale=scale, seed=seed, stages=tuple(stages), source=Path(path).resolve())
