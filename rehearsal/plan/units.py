"""Reading a stage's units: filters by former province and type, codes added and excluded, a seeded sample.

The same reader chooses the units of an ``absence`` fault, within the stage's
own units. Codes are the official ones of province 79 (`rehearsal.shared.wards`).
"""

from __future__ import annotations

import random

import yaml

from ..shared.wards import PROVINCE_CODE, FormerProvince, UnitType, load_units, units_by_code
from .model import UnitSelection
from .nodes import ReadContext, is_null, read_list, read_mapping, read_number, read_text
from .notation import unknown_choice

_UNIT_KEYS = ("former_province", "type", "codes", "exclude", "sample")


def _choices(ctx: ReadContext, node: yaml.Node, field: str, label: str, allowed: list[str]) -> tuple[str, ...]:
    """A list of names (or one name) from `allowed`, with a 'did you mean' for a near miss."""
    out = []
    for i, item in enumerate(read_list(ctx, node, field, single_ok=True)):
        value = read_text(ctx, item, f"{field}[{i}]")
        if value not in allowed:
            raise ctx.error(item, f"{field}[{i}]", unknown_choice(label, value, allowed))
        out.append(value)
    return tuple(out)


def _codes(ctx: ReadContext, node: yaml.Node, field: str,
           within: tuple[int, ...] | None = None) -> list[tuple[int, yaml.Node]]:
    """Official unit codes (or one code) with their nodes; each known, and in `within` if given."""
    known = units_by_code()
    out = []
    for i, item in enumerate(read_list(ctx, node, field, single_ok=True)):
        code = int(read_number(ctx, item, f"{field}[{i}]", integer=True, kind="a unit code"))
        if code not in known or (within is not None and code not in within):
            if code in known:
                raise ctx.error(item, f"{field}[{i}]", f"unit {code} does not take part in this stage "
                                                       f"(expected one of the stage's {len(within or ())} units)")
            raise ctx.error(item, f"{field}[{i}]", f"unknown unit code {code} (expected one of the {len(known)} "
                                                   f"codes of province {PROVINCE_CODE}; see 'rehearse wards')")
        out.append((code, item))
    return out


def read_units(ctx: ReadContext, node: yaml.Node | None, field: str, *, seed: int, stage: str,
               within: tuple[int, ...] | None = None) -> tuple[tuple[int, ...], UnitSelection]:
    """The stage's unit codes: (filters AND-ed, or all) + codes - exclude, then a seeded sample.

    `within` limits the choice to those units (a fault's units are the stage's).
    """
    everyone = [u for u in load_units() if within is None or u.code in within]
    if is_null(node):
        return tuple(u.code for u in everyone), UnitSelection()
    assert node is not None
    m = read_mapping(ctx, node, field, _UNIT_KEYS)
    provinces = (_choices(ctx, m["former_province"], f"{field}.former_province", "former province",
                          [v.value for v in FormerProvince]) if "former_province" in m else ())
    types = (_choices(ctx, m["type"], f"{field}.type", "unit type", [v.value for v in UnitType])
             if "type" in m else ())
    codes = _codes(ctx, m["codes"], f"{field}.codes", within) if "codes" in m else []
    exclude = _codes(ctx, m["exclude"], f"{field}.exclude", within) if "exclude" in m else []
    added = {code for code, _ in codes}
    sample = (int(read_number(ctx, m["sample"], f"{field}.sample", integer=True, positive=True))
              if "sample" in m else None)
    filtered = bool(provinces or types or not codes)  # only codes given: exactly those
    chosen = {u.code for u in everyone if filtered
              and (not provinces or u.former_province.value in provinces)
              and (not types or u.type.value in types)}
    chosen = (chosen | added) - {code for code, _ in exclude}
    if not chosen:
        raise ctx.error(node, field, "the selection picks no unit (expected at least one; the filters have no "
                                     "unit in common or exclude removes them all; see 'rehearse wards')")
    for i, (code, item) in enumerate(exclude):
        if code in added:
            raise ctx.error(item, f"{field}.exclude[{i}]", f"unit {code} is both in codes and in exclude "
                                                           f"(expected one or the other)")
    if sample is not None:
        if sample > len(chosen):
            raise ctx.error(m["sample"], f"{field}.sample", f"expected at most {len(chosen)} (the units the "
                                                            f"selection picks); found {sample}")
        # Seeded by plan seed and stage name: the same file always picks the same units in
        # every process, and editing one stage never reshuffles another.
        chosen = set(random.Random(f"{seed}:{stage}").sample(sorted(chosen), sample))
    selection = UnitSelection(former_provinces=provinces, types=types, codes=tuple(c for c, _ in codes),
                              exclude=tuple(c for c, _ in exclude), sample=sample)
    return tuple(sorted(chosen)), selection

