"""Reading a stage's citizens: the closed model (users, spawn rate, a ramp) or the open one (arrival rate).

Also the shares of their journeys: filing at another unit (``other_unit_share``)
and asking to withdraw the dossier (``withdraw_share``, 0 to 1 or a percentage,
default 1 %). See `rehearsal.plan.model.CitizenLoad` for what each field means.
"""

from __future__ import annotations

import re

import yaml

from .model import MAX_ATTACHMENT_KB, MAX_CITIZENS, CitizenLoad, RampStep
from .nodes import (ReadContext, is_text, read_duration, read_list, read_mapping, read_number, read_share,
                    read_think_time)

CITIZEN_KEYS = ("users", "spawn_rate", "think_time", "other_unit_share", "attachment_kb", "follow_interval", "ramp",
                "arrival_rate", "withdraw_share")
_RATE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|sec|min|m|h|hour)\s*")


def read_citizens(ctx: ReadContext, node: yaml.Node, field: str) -> CitizenLoad:
    """A stage's ``citizens``: a ramp or an arrival rate, not both."""
    c = read_mapping(ctx, node, field, CITIZEN_KEYS, required=("users", "spawn_rate", "think_time"))
    users = int(read_number(ctx, c["users"], f"{field}.users", integer=True, minimum=0, maximum=MAX_CITIZENS))
    spawn_rate = float(read_number(ctx, c["spawn_rate"], f"{field}.spawn_rate", positive=True,
                                   why=" (users started per wall-clock second)"))
    think_time = read_think_time(ctx, c["think_time"], f"{field}.think_time")
    other = read_share(ctx, c["other_unit_share"], f"{field}.other_unit_share") if "other_unit_share" in c else 0.1
    withdraw = (read_share(ctx, c["withdraw_share"], f"{field}.withdraw_share") if "withdraw_share" in c
                else CitizenLoad.withdraw_share)
    attachment_kb = CitizenLoad.attachment_kb
    if "attachment_kb" in c:
        where = f"{field}.attachment_kb"
        items = read_list(ctx, c["attachment_kb"], where)
        if len(items) != 2:
            raise ctx.error(c["attachment_kb"], where, f"expected [low, high] in KiB; found a list of {len(items)}")
        lo, hi = (int(read_number(ctx, item, f"{where}[{i}]", integer=True, minimum=0,
                                  maximum=MAX_ATTACHMENT_KB)) for i, item in enumerate(items))
        if lo > hi:
            raise ctx.error(c["attachment_kb"], where, f"expected [low, high] with low ≤ high; found {lo} > {hi}")
        attachment_kb = (lo, hi)
    follow = (read_duration(ctx, c["follow_interval"], f"{field}.follow_interval")
              if "follow_interval" in c else CitizenLoad.follow_interval_s)
    ramp = _ramp(ctx, c["ramp"], f"{field}.ramp", users) if "ramp" in c else ()
    arrivals = _arrival_rate(ctx, c["arrival_rate"], f"{field}.arrival_rate") if "arrival_rate" in c else None
    if ramp and arrivals is not None:
        raise ctx.error(c["ramp"], f"{field}.ramp", "a ramp shapes a crowd (closed model) and arrival_rate is an "
                                                    "open model: expected one of them, not both")
    return CitizenLoad(users=users, spawn_rate=spawn_rate, think_time=think_time, other_unit_share=other,
                       attachment_kb=attachment_kb, follow_interval_s=follow, ramp=ramp,
                       arrival_rate_per_min=arrivals, withdraw_share=withdraw)


def _ramp(ctx: ReadContext, node: yaml.Node, field: str, users: int) -> tuple[RampStep, ...]:
    """``[{to: 600, over: 10m}, {hold: 1h}, {to: 0, over: 10m}]``; ``to`` at most ``users``."""
    steps = []
    items = read_list(ctx, node, field)
    if not items:
        raise ctx.error(node, field, "expected at least one step like {to: 600, over: 10m} or {hold: 30m}")
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        m = read_mapping(ctx, item, where, ("to", "over", "hold"),
                         what="a step ({to: N, over: 10m} or {hold: 30m})")
        if "hold" in m:
            if len(m) != 1:
                raise ctx.error(item, where, "a hold step has only 'hold' (expected {hold: 30m})")
            steps.append(RampStep(None, read_duration(ctx, m["hold"], f"{where}.hold")))
            continue
        if "to" not in m:
            raise ctx.error(item, f"{where}.to", "missing (required): expected {to: N, over: 10m} or {hold: 30m}")
        to = int(read_number(ctx, m["to"], f"{where}.to", integer=True, minimum=0, maximum=users,
                             why=" (citizens.users is the most a ramp can reach)"))
        over = read_duration(ctx, m["over"], f"{where}.over", allow_zero=True) if "over" in m else 0.0
        steps.append(RampStep(to, over))
    return tuple(steps)


def _arrival_rate(ctx: ReadContext, node: yaml.Node, field: str) -> float:
    """New citizens per simulated minute, from ``30/min``, ``2/s``, ``900/h`` or a number (per minute)."""
    if is_text(node):
        match = _RATE.fullmatch(node.value)
        if not match:
            raise ctx.error(node, field, f"expected arrivals like 30/min, 2/s or 900/h; found {node.value!r}")
        per = {"s": 60, "sec": 60, "min": 1, "m": 1, "h": 1 / 60, "hour": 1 / 60}[match.group(2)]
        value = float(match.group(1)) * per
        if value <= 0:
            raise ctx.error(node, field, f"expected arrivals greater than 0; found {node.value!r}")
        return value
    return float(read_number(ctx, node, field, positive=True, why=" (new citizens per minute)"))

