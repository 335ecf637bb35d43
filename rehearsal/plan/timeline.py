"""Reading the stage's timeline: faults (on a front door, a one-stop system or the link) and the cutover.

Both happen at a simulated time (``at``) that must fall inside the stage:
officers' lead + filing window + grace. The cutover is read first: it says
which front door citizens use before it, which is where a citizen-side fault
(latency, errors, outage, silent-drop) goes when it names no ``system``.

Which system plays which kind mirrors `rehearsal.portal.faults.SYSTEM_KINDS`
(the plan room may not import the portal; tests/test_two_systems_plan.py
holds the two together), with the front doors added:

==================  ==========================================  ===========================
kind                may name                                    default
==================  ==========================================  ===========================
latency, errors,    national, provincial, city, brvt,           the front door of the stage's
outage              binh-duong                                  citizens at ``at`` (below)
silent-drop         national, city, brvt, binh-duong            the same
slow-agency         provincial, brvt, binh-duong                provincial (where officers work)
link-slow, -errors, national, link                              national (its integration API)
-down
vneid-overload      national                                    national
link-kill,          provincial, link                            provincial (its link agent)
-duplicates
absence             (no system: the harness plays it)           provincial
==================  ==========================================  ===========================

``link`` is resolved to the system that plays the kind. The front door of the
stage's citizens at ``at`` is the cutover's ``from`` when the fault starts
before a cutover that moves all the stage's units, else ``national`` (in a
stage whose cutover moves some units, most citizens are on the national
portal from the start: name ``system`` to hit the old one). ``brvt`` and
``binh-duong`` run only in a stage whose cutover moves units from them.
"""

from __future__ import annotations

import yaml

from ..shared.formats import duration as format_duration
from ..shared.wards import units_by_code
from .gate_language import Gate, parse_gate
from .model import (CUTOVER_FROM, FAULT_KINDS, FAULT_SYSTEMS, FORMER_SYSTEM_PROVINCE, MAX_OFFICERS_PER_UNIT, Cutover,
                    StageFault)
from .nodes import (ReadContext, is_null, is_text, read_bool, read_duration, read_list, read_mapping, read_number,
                    read_share, read_text)
from .notation import DECIMAL, unknown_choice
from .runbook import CHECKS, DEFAULT_LIMIT_FACTOR, PHASES, WORKING_PHASES, RunbookPhase
from .units import read_units

_FAULT_KEYS = ("kind", "name", "system", "at", "for", "endpoints", "delay", "rate", "status", "factor", "units",
               "officers")
_CUTOVER_KEYS = ("at", "mode", "retry_after", "migrate", "units", "from", "phases")
_PHASE_KEYS = ("for", "limit", "checks")
#: Which keys each fault kind takes besides kind, name, system, at and for (names as the portal's, plan-style).
_FAULT_FIELDS = {"latency": ("endpoints", "delay"), "errors": ("endpoints", "rate", "status"), "outage": (),
                 "slow-agency": ("factor",), "silent-drop": ("rate",), "absence": ("units", "officers"),
                 "link-slow": ("endpoints", "delay"), "link-errors": ("rate",), "link-down": (), "link-kill": (),
                 "link-duplicates": (), "vneid-overload": ("rate",)}
_EVERY_DOOR = ("national", "provincial", "city", "brvt", "binh-duong")
#: The systems that may play each kind (see the table above); ``link`` is resolved by `_LINK_SIDE`.
_PLAYED_BY = {"latency": _EVERY_DOOR, "errors": _EVERY_DOOR, "outage": _EVERY_DOOR,
              "silent-drop": ("national", "city", "brvt", "binh-duong"),
              "slow-agency": ("provincial", "brvt", "binh-duong"), "absence": ("provincial",),
              "link-slow": ("national", "link"), "link-errors": ("national", "link"), "link-down": ("national", "link"),
              "vneid-overload": ("national",), "link-kill": ("provincial", "link"),
              "link-duplicates": ("provincial", "link")}
#: Which side of the link plays a link fault: the national integration endpoint, or the provincial agent.
_LINK_SIDE = {"link-slow": "national", "link-errors": "national", "link-down": "national",
              "link-kill": "provincial", "link-duplicates": "provincial"}
#: Kinds a citizen meets at the front door: with no ``system``, the door the stage's citizens use at ``at``.
_FRONT_DOOR_KINDS = ("latency", "errors", "outage", "silent-drop")


def read_faults(ctx: ReadContext, node: yaml.Node | None, field: str, *, seed: int, stage: str,
                units: tuple[int, ...], total_s: float, cutover: Cutover | None = None) -> tuple[StageFault, ...]:
    """A stage's ``faults``, in the order written; `units` are the stage's, `total_s` its simulated length,
    `cutover` its cutover (which front door citizens use before it)."""
    if is_null(node):
        return ()
    assert node is not None
    return tuple(_fault(ctx, item, f"{field}[{i}]", seed=seed, stage=stage, units=units, total_s=total_s,
                        cutover=cutover)
                 for i, item in enumerate(read_list(ctx, node, field)))


def _fault(ctx: ReadContext, node: yaml.Node, field: str, *, seed: int, stage: str, units: tuple[int, ...],
           total_s: float, cutover: Cutover | None) -> StageFault:
    m = read_mapping(ctx, node, field, _FAULT_KEYS, required=("kind", "at"), what="a fault")
    kind = read_text(ctx, m["kind"], f"{field}.kind")
    if kind not in FAULT_KINDS:
        raise ctx.error(m["kind"], f"{field}.kind", unknown_choice("fault kind", kind, FAULT_KINDS))
    common = ("kind", "name", "at", "for") if kind == "absence" else ("kind", "name", "system", "at", "for")
    for key in m:
        if key not in common and key not in _FAULT_FIELDS[kind]:
            takes = ", ".join(_FAULT_FIELDS[kind]) or "nothing more"
            why = " (the harness plays it: its officers sign out, on no system)" if key == "system" else ""
            raise ctx.error(m[key], f"{field}.{key}", f"a fault of kind {kind} does not take {key!r}{why} "
                                                      f"(it takes {', '.join(common)} and {takes})")
    at = _time_in_stage(ctx, m["at"], f"{field}.at", total_s)
    system = _system(ctx, m, field, kind, at=at, units=units, cutover=cutover)
    length = read_duration(ctx, m["for"], f"{field}.for") if "for" in m else None
    name = read_text(ctx, m["name"], f"{field}.name") if "name" in m else f"{kind}@{format_duration(at)}"
    extra: dict[str, object] = {}
    if "endpoints" in m:
        endpoints = read_list(ctx, m["endpoints"], f"{field}.endpoints", single_ok=True)
        extra["endpoints"] = tuple(read_text(ctx, e, f"{field}.endpoints[{j}]") for j, e in enumerate(endpoints))
    if kind in ("latency", "link-slow"):
        if "delay" not in m:
            raise ctx.error(node, f"{field}.delay", "missing (required): expected a delay like 300ms or 2s, "
                                                    "[low, high] or {mean: 1s}")
        extra.update(_delay(ctx, m["delay"], f"{field}.delay"))
    if "rate" in m:
        extra["rate"] = read_share(ctx, m["rate"], f"{field}.rate")
    if "status" in m:
        extra["status"] = int(read_number(ctx, m["status"], f"{field}.status", integer=True, minimum=400,
                                          maximum=599, why=" (an HTTP error status)"))
    if "factor" in m:
        extra["factor"] = float(read_number(ctx, m["factor"], f"{field}.factor", minimum=1, maximum=1000,
                                            why=" (times slower)"))
    if kind == "absence":
        extra["units"], _ = read_units(ctx, m.get("units"), f"{field}.units", seed=seed, stage=f"{stage}:{name}",
                                       within=units)
        if "officers" in m:
            extra["officers"] = int(read_number(ctx, m["officers"], f"{field}.officers", integer=True, minimum=1,
                                                maximum=MAX_OFFICERS_PER_UNIT, why=" officers away per unit"))
    return StageFault(kind=kind, at_s=at, for_s=length, name=name, system=system, **extra)  # type: ignore[arg-type]


def _system(ctx: ReadContext, m: dict[str, yaml.Node], field: str, kind: str, *, at: float,
            units: tuple[int, ...], cutover: Cutover | None) -> str:
    """The system a fault goes to: as named (``link`` resolved), else the kind's default (module docstring)."""
    played_by = _PLAYED_BY[kind]
    if "system" not in m:
        if kind in _FRONT_DOOR_KINDS:
            moves_all = cutover is not None and set(cutover.units or units) == set(units)
            return cutover.from_system if cutover is not None and moves_all and at < cutover.at_s else "national"
        return _LINK_SIDE.get(kind, played_by[0])
    node, where = m["system"], f"{field}.system"
    system = read_text(ctx, node, where)
    if system not in FAULT_SYSTEMS:
        raise ctx.error(node, where, unknown_choice("system", system, FAULT_SYSTEMS))
    if system not in played_by:
        raise ctx.error(node, where, f"a fault of kind {kind} is not played by {system} (expected one of: "
                                     f"{', '.join(played_by)})")
    if system in FORMER_SYSTEM_PROVINCE and (cutover is None or cutover.from_system != system):
        raise ctx.error(node, where, f"{system} runs only in a stage whose cutover moves units from it "
                                     f"(cutover.from: {system}); this stage has "
                                     + ("no cutover" if cutover is None else f"cutover.from: {cutover.from_system}"))
    return _LINK_SIDE.get(kind, system) if system == "link" else system


def _delay(ctx: ReadContext, node: yaml.Node, field: str) -> dict[str, object]:
    """A latency fault's delay: ``2s``, ``300ms``, ``[100ms, 900ms]`` or ``{mean: 1s}`` (wall-clock)."""
    def seconds(n: yaml.Node, where: str) -> float:
        if is_text(n) and n.value.strip().endswith("ms"):
            digits = n.value.strip()[:-2].strip()
            if not DECIMAL.fullmatch(digits) or float(digits) < 0:
                raise ctx.error(n, where, f"expected milliseconds like 300ms; found {n.value!r}")
            return float(digits) / 1000
        return read_duration(ctx, n, where, allow_zero=True)

    if isinstance(node, yaml.MappingNode):
        m = read_mapping(ctx, node, field, ("mean",), required=("mean",), what="an exponential delay")
        return {"mean_s": seconds(m["mean"], f"{field}.mean")}
    if isinstance(node, yaml.SequenceNode):
        if len(node.value) != 2:
            raise ctx.error(node, field, f"expected [low, high]; found a list of {len(node.value)}")
        low, high = (seconds(n, f"{field}[{j}]") for j, n in enumerate(node.value))
        if low > high:
            raise ctx.error(node, field, "expected [low, high] with low ≤ high")
        return {"delay_s": (low, high)}
    value = seconds(node, field)
    return {"delay_s": (value, value)}


def read_cutover(ctx: ReadContext, node: yaml.Node | None, field: str, total_s: float, *, seed: int = 1,
                 stage: str = "", units: tuple[int, ...] = ()) -> Cutover | None:
    """A stage's ``cutover``, or None if it has none; `total_s` is the stage's simulated length, `units` its units
    (the cutover's ``units`` choose among them, by the plan's `seed`)."""
    if is_null(node):
        return None
    assert node is not None
    m = read_mapping(ctx, node, field, _CUTOVER_KEYS, required=("at",))
    at = _time_in_stage(ctx, m["at"], f"{field}.at", total_s)
    mode = "503"
    if "mode" in m:
        mode = read_text(ctx, m["mode"], f"{field}.mode")
        if mode not in ("503", "redirect"):
            raise ctx.error(m["mode"], f"{field}.mode", f"expected 503 or redirect; found {mode!r}")
    retry = (read_duration(ctx, m["retry_after"], f"{field}.retry_after", allow_zero=True)
             if "retry_after" in m else 60.0)
    migrate = read_bool(ctx, m["migrate"], f"{field}.migrate") if "migrate" in m else True
    moving, selection = read_units(ctx, m.get("units"), f"{field}.units", seed=seed, stage=f"{stage}:cutover",
                                   within=units or None)
    source = "city"
    if "from" in m:
        source = read_text(ctx, m["from"], f"{field}.from")
        if source not in CUTOVER_FROM:
            raise ctx.error(m["from"], f"{field}.from", unknown_choice("system", source, CUTOVER_FROM))
    province = FORMER_SYSTEM_PROVINCE.get(source)
    if province is not None:
        known = units_by_code()
        others = [c for c in moving if known[c].former_province.value != province]
        if others:
            raise ctx.error(m["from"], f"{field}.from",
                            f"{source} holds only the units of former {province}; the cutover moves "
                            f"{len(others)} other unit(s) (first: {others[0]}, of "
                            f"{known[others[0]].former_province.value}): choose its units with "
                            f"cutover.units: {{former_province: {province}}}")
    phases = _read_phases(ctx, m["phases"], f"{field}.phases", source=source, migrate=migrate,
                          room=total_s - at) if "phases" in m else ()
    return Cutover(at_s=at, mode=mode, retry_after_s=retry, migrate=migrate, units=moving, unit_selection=selection,
                   from_system=source, phases=phases)


def _read_phases(ctx: ReadContext, node: yaml.Node, field: str, *, source: str, migrate: bool,
                 room: float) -> tuple[RunbookPhase, ...]:
    """``cutover.phases``: ``{freeze: 2m, drain: 5m, validate: {for: 3m, checks: [...]}, switch: 1m, observe: 10m}``
    in that order (`rehearsal.plan.runbook`); `room` is the simulated time left in the stage after ``at``."""
    m = read_mapping(ctx, node, field, PHASES, required=("switch",), what="the runbook's phases")
    order = [p for p in PHASES if p in m]
    if list(m) != order:
        raise ctx.error(node, field, f"expected the phases in the order they are played ({', '.join(order)}); "
                                     f"found {', '.join(m)}")
    if "drain" in m and source != "city":
        raise ctx.error(m["drain"], f"{field}.drain", f"{source} has a database of its own: its dossiers are "
                                                      f"migrated (name the phase migrate), not drained")
    if "migrate" in m and (source == "city" or not migrate):
        why = ("the city portal has no database of its own (its dossiers are on HCMC's platform already): "
               "name the phase drain") if source == "city" else "cutover.migrate is false: nothing is migrated"
        raise ctx.error(m["migrate"], f"{field}.migrate", why)
    out: list[RunbookPhase] = []
    for name in order:
        where, value = f"{field}.{name}", m[name]
        limit, checks = 0.0, ()
        if isinstance(value, yaml.MappingNode):
            keys = _PHASE_KEYS if name == "validate" else _PHASE_KEYS[:2] if name in WORKING_PHASES else ("for",)
            p = read_mapping(ctx, value, where, keys, required=("for",), what=f"the {name} phase")
            planned = read_duration(ctx, p["for"], f"{where}.for", allow_zero=name == "switch")
            if "limit" in p:
                limit = read_duration(ctx, p["limit"], f"{where}.limit")
                if limit < planned:
                    raise ctx.error(p["limit"], f"{where}.limit", f"expected a limit of at least the planned "
                                                                  f"{format_duration(planned)}; found "
                                                                  f"{p['limit'].value!r}")
            if "checks" in p:
                checks = tuple(_check(ctx, c, f"{where}.checks[{i}]")
                               for i, c in enumerate(read_list(ctx, p["checks"], f"{where}.checks", single_ok=True)))
        else:
            planned = read_duration(ctx, value, where, allow_zero=name == "switch")
        if name in WORKING_PHASES and not limit:
            limit = planned * DEFAULT_LIMIT_FACTOR
        if name == "validate" and not checks:
            checks = tuple(CHECKS)
        out.append(RunbookPhase(name, planned, limit, checks))
    planned_total = sum(p.planned_s for p in out)
    if planned_total >= room:
        raise ctx.error(node, field, f"the runbook is planned to take {format_duration(planned_total)}, longer than "
                                     f"the {format_duration(room)} left in the stage after cutover.at")
    return tuple(out)


#: The gate every runbook that can roll back gets unless the stage writes one on the same figure.
ROLLED_BACK_GATE = "cutover_rolled_back == 0"


def runbook_gates(ctx: ReadContext, node: yaml.Node, field: str, gates: tuple[Gate, ...],
                  cutover: Cutover | None) -> tuple[Gate, ...]:
    """The stage's gates, checked against its runbook: ``on_fail: rollback`` needs a cutover from the city portal
    (after a migration there is nowhere to carry dossiers back to), and a runbook that may roll back (a validate
    phase, or such a gate) gets the gate `ROLLED_BACK_GATE`: a rolled-back stage is NO-GO, whatever else passed."""
    rollback = [g for g in gates if g.on_fail == "rollback"]
    if rollback and (cutover is None or cutover.from_system != "city"):
        where = "has no cutover" if cutover is None else f"moves units from {cutover.from_system} (a migration)"
        raise ctx.error(node, f"{field}.gates", f"gate {rollback[0].name!r} has on_fail: rollback, but the stage "
                                                f"{where}: only a cutover from the city portal can roll back")
    if rollback and cutover is not None and cutover.phase("observe") is None:
        raise ctx.error(node, f"{field}.cutover.phases", f"gate {rollback[0].name!r} has on_fail: rollback: the "
                                                         f"runbook needs an observe phase (when it is judged)")
    may_roll_back = cutover is not None and (rollback or cutover.phase("validate") is not None)
    if not may_roll_back or any(g.metric == "cutover_rolled_back" for g in gates):
        return gates
    return gates + (parse_gate(ROLLED_BACK_GATE, name="runbook: not rolled back"),)


def _check(ctx: ReadContext, node: yaml.Node, field: str) -> str:
    name = read_text(ctx, node, field)
    if name not in CHECKS:
        raise ctx.error(node, field, unknown_choice("check", name, list(CHECKS)))
    return name


def _time_in_stage(ctx: ReadContext, node: yaml.Node, field: str, total_s: float) -> float:
    """An ``at``: simulated seconds from the start of the stage, before its end."""
    at = read_duration(ctx, node, field, allow_zero=True)
    if at >= total_s:
        raise ctx.error(node, field, f"expected a time inside the stage (before {format_duration(total_s)}); "
                                     f"found {node.value!r}")
    return at
