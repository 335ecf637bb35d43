"""Reading a stage's officers: accounts per unit, their pace, and how often they send a dossier back.

Every key is optional; `rehearsal.plan.model.OfficerLoad` holds the defaults (2 per unit, as in the 2025 trials).
"""

from __future__ import annotations

import yaml

from .model import MAX_OFFICERS_PER_UNIT, OfficerLoad
from .nodes import ReadContext, is_null, read_duration, read_mapping, read_number, read_share, read_think_time

_OFFICER_KEYS = ("per_unit", "think_time", "poll_interval", "supplement_share", "refuse_share", "sign_in_lead")


def read_officers(ctx: ReadContext, node: yaml.Node | None, field: str) -> OfficerLoad:
    """A stage's ``officers``; what is left out keeps its default."""
    if is_null(node):
        return OfficerLoad()
    assert node is not None
    o = read_mapping(ctx, node, field, _OFFICER_KEYS)
    given: dict[str, object] = {}
    # Read in the order of the fields, so that of two mistakes the first one written is named.
    if "per_unit" in o:
        given["per_unit"] = int(read_number(ctx, o["per_unit"], f"{field}.per_unit", integer=True, minimum=0,
                                            maximum=MAX_OFFICERS_PER_UNIT, why=" officers per unit"))
    if "think_time" in o:
        given["think_time"] = read_think_time(ctx, o["think_time"], f"{field}.think_time")
    if "poll_interval" in o:
        given["poll_interval_s"] = read_duration(ctx, o["poll_interval"], f"{field}.poll_interval")
    for share in ("supplement_share", "refuse_share"):
        if share in o:
            given[share] = read_share(ctx, o[share], f"{field}.{share}")
    if "sign_in_lead" in o:
        given["sign_in_lead_s"] = read_duration(ctx, o["sign_in_lead"], f"{field}.sign_in_lead", allow_zero=True)
    return OfficerLoad(**given)  # type: ignore[arg-type]
