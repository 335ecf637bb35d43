"""Reading the stage's timeline: faults (latency, errors, outage, slow agency, silent drop, absence) and the cutover.

Both happen at a simulated time (``at``) that must fall inside the stage:
officers' lead + filing window + grace.
"""

from __future__ import annotations

import yaml

from ..shared.formats import duration as format_duration
from .model import FAULT_KINDS, MAX_OFFICERS_PER_UNIT, Cutover, StageFault
from .nodes import (ReadContext, is_null, is_text, read_bool, read_duration, read_list, read_mapping, read_number,
                    read_share, read_text)
from .notation import DECIMAL, unknown_choice
from .units import read_units

_FAULT_KEYS = ("kind", "name", "at", "for", "endpoints", "delay", "rate", "status", "factor", "units", "officers")
_CUTOVER_KEYS = ("at", "mode", "retry_after", "migrate")
#: Which keys each fault kind takes besides kind, name, at and for.
_FAULT_FIELDS = {"latency": ("endpoints", "delay"), "errors": ("endpoints", "rate", "status"), "outage": (),
                 "slow-agency": ("factor",), "silent-drop": ("rate",), "absence": ("units", "officers")}


def read_faults(ctx: ReadContext, node: yaml.Node | None, field: str, *, seed: int, stage: str,
                units: tuple[int, ...], total_s: float) -> tuple[StageFault, ...]:
    """A stage's ``faults``, in the order written; `units` are the stage's, `total_s` its simulated length."""
    if is_null(node):
        return ()
    assert node is not None
    return tuple(_fault(ctx, item, f"{field}[{i}]", seed=seed, stage=stage, units=units, total_s=total_s)
                 for i, item in enumerate(read_list(ctx, node, field)))


def _fault(ctx: ReadContext, node: yaml.Node, field: str, *, seed: int, stage: str, units: tuple[int, ...],
           total_s: float) -> StageFault:
    m = read_mapping(ctx, node, field, _FAULT_KEYS, required=("kind", "at"), what="a fault")
    kind = read_text(ctx, m["kind"], f"{field}.kind")
    if kind not in FAULT_KINDS:
        raise ctx.error(m["kind"], f"{field}.kind", unknown_choice("fault kind", kind, FAULT_KINDS))
    for key in m:
        if key not in ("kind", "name", "at", "for") and key not in _FAULT_FIELDS[kind]:
            takes = ", ".join(_FAULT_FIELDS[kind]) or "nothing more"
            raise ctx.error(m[key], f"{field}.{key}", f"a fault of kind {kind} does not take {key!r} "
                                                      f"(it takes kind, name, at, for and {takes})")
    at = _time_in_stage(ctx, m["at"], f"{field}.at", total_s)
    length = read_duration(ctx, m["for"], f"{field}.for") if "for" in m else None
    name = read_text(ctx, m["name"], f"{field}.name") if "name" in m else f"{kind}@{format_duration(at)}"
    extra: dict[str, object] = {}
    if "endpoints" in m:
        endpoints = read_list(ctx, m["endpoints"], f"{field}.endpoints", single_ok=True)
        extra["endpoints"] = tuple(read_text(ctx, e, f"{field}.endpoints[{j}]") for j, e in enumerate(endpoints))
    if kind == "latency":
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
    return StageFault(kind=kind, at_s=at, for_s=length, name=name, **extra)  # type: ignore[arg-type]


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


def read_cutover(ctx: ReadContext, node: yaml.Node | None, field: str, total_s: float) -> Cutover | None:
    """A stage's ``cutover``, or None if it has none; `total_s` is the stage's simulated length."""
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
    return Cutover(at_s=at, mode=mode, retry_after_s=retry, migrate=migrate)


def _time_in_stage(ctx: ReadContext, node: yaml.Node, field: str, total_s: float) -> float:
    """An ``at``: simulated seconds from the start of the stage, before its end."""
    at = read_duration(ctx, node, field, allow_zero=True)
    if at >= total_s:
        raise ctx.error(node, field, f"expected a time inside the stage (before {format_duration(total_s)}); "
                                     f"found {node.value!r}")
    return at
