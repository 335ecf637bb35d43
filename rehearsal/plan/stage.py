"""Reading one stage: its sections in order, then what only the whole stage can tell.

A stage with no users at all, or a crowd that cannot all be started inside
the wall-clock filing window, is refused here: each section alone is fine.
"""

from __future__ import annotations

import yaml

from ..shared.formats import duration as format_duration
from .citizens import CITIZEN_KEYS, read_citizens
from .gates import read_gates
from .model import Stage
from .nodes import ReadContext, read_duration, read_mapping, read_text
from .officers import read_officers
from .timeline import read_cutover, read_faults, runbook_gates
from .units import read_units

STAGE_KEYS = ("name", "description", "units", "duration", "grace", "citizens", "officers", "gates", "faults",
              "cutover")


def read_stage(ctx: ReadContext, node: yaml.Node, field: str, *, seed: int, time_scale: float) -> Stage:
    """One stage of ``stages``; `seed` picks its unit sample, `time_scale` gives its wall-clock window."""
    m = read_mapping(ctx, node, field, STAGE_KEYS, required=("name", "duration", "citizens"))
    name = read_text(ctx, m["name"], f"{field}.name", slug=True)
    description = read_text(ctx, m["description"], f"{field}.description") if "description" in m else ""
    units, selection = read_units(ctx, m.get("units"), f"{field}.units", seed=seed, stage=name)
    duration = read_duration(ctx, m["duration"], f"{field}.duration")
    grace = read_duration(ctx, m["grace"], f"{field}.grace", allow_zero=True) if "grace" in m else 0.0
    citizens = read_citizens(ctx, m["citizens"], f"{field}.citizens")
    officers = read_officers(ctx, m.get("officers"), f"{field}.officers")
    gates = read_gates(ctx, m.get("gates"), f"{field}.gates")
    total_s = officers.sign_in_lead_s + duration + grace
    # The cutover first: which front door citizens use before it is where a fault naming no system goes.
    cutover = read_cutover(ctx, m.get("cutover"), f"{field}.cutover", total_s, seed=seed, stage=name, units=units)
    gates = runbook_gates(ctx, node, field, gates, cutover)  # on_fail: rollback, and a rollback is NO-GO
    faults = read_faults(ctx, m.get("faults"), f"{field}.faults", seed=seed, stage=name, units=units,
                         total_s=total_s, cutover=cutover)
    if citizens.users == 0 and officers.per_unit == 0:
        raise ctx.error(node, field, "the stage has no users (citizens.users and officers.per_unit are both 0)")
    # Citizens are started at spawn_rate once the officers' lead is over (with no lead, officers
    # are started with them): a crowd that cannot all arrive inside the window is not the plan written.
    starting = citizens.users + (0 if officers.sign_in_lead_s else officers.per_unit * len(units))
    window = duration / time_scale
    if not citizens.ramp and starting / citizens.spawn_rate > window:
        raise ctx.error(read_mapping(ctx, m["citizens"], f"{field}.citizens", CITIZEN_KEYS)["spawn_rate"],
                        f"{field}.citizens.spawn_rate",
                        f"{starting} users at {citizens.spawn_rate:g} per second take "
                        f"{format_duration(starting / citizens.spawn_rate)} to start, longer than the "
                        f"{format_duration(window)} wall-clock filing window ({format_duration(duration)} at "
                        f"time scale x{time_scale:g}); raise spawn_rate or lower users")
    return Stage(name=name, description=description, units=units, unit_selection=selection,
                 duration_s=duration, grace_s=grace, citizens=citizens, officers=officers, gates=gates,
                 faults=faults, cutover=cutover)

