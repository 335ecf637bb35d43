"""Reading gates: a list of expressions or ``{name, expr, abort_on_fail, abort_grace, on_fail}`` mappings.

The expression itself is `rehearsal.plan.gate_language`'s; here each gate gets
its file, line and field, names are checked unique, and a set of gates on one
figure that no value could pass is refused.
"""

from __future__ import annotations

from dataclasses import replace

import yaml

from ..errors import GateSyntaxError
from ..shared.wards import PROVINCE_CODE, units_by_code
from .gate_language import SHAPE as GATE_SHAPE
from .gate_language import LIVE_METRICS, Gate, parse_gate, satisfiable
from .nodes import (ReadContext, describe_node, is_null, is_text, read_bool, read_duration, read_list, read_mapping,
                    read_text)
from .notation import unknown_choice
from .runbook import ON_FAIL

_GATE_KEYS = ("name", "expr", "abort_on_fail", "abort_grace", "on_fail")


def _gate(ctx: ReadContext, node: yaml.Node, field: str) -> tuple[Gate, yaml.Node]:
    """One gate and the node of its expression (for the line of later errors)."""
    name, abort, grace, on_fail, on_fail_node = None, False, 0.0, "nogo", None
    if isinstance(node, yaml.MappingNode):
        m = read_mapping(ctx, node, field, _GATE_KEYS, required=("expr",), what="a gate mapping")
        name = read_text(ctx, m["name"], f"{field}.name") if "name" in m else None
        if "abort_on_fail" in m:
            abort = read_bool(ctx, m["abort_on_fail"], f"{field}.abort_on_fail")
        if "on_fail" in m:
            on_fail, on_fail_node = _on_fail(ctx, m, field, abort)
            abort = abort or on_fail == "abort"
        if "abort_grace" in m:
            if not abort:
                raise ctx.error(m["abort_grace"], f"{field}.abort_grace",
                                "abort_grace only applies with abort_on_fail: true")
            grace = read_duration(ctx, m["abort_grace"], f"{field}.abort_grace", allow_zero=True)
        node, field = m["expr"], f"{field}.expr"
    if not is_text(node):
        raise ctx.error(node, field, f"expected a gate {GATE_SHAPE}; found {describe_node(node)}")
    try:
        gate = parse_gate(node.value, name=name, abort_on_fail=abort, abort_grace_s=grace)
    except GateSyntaxError as exc:
        raise ctx.error(node, field, str(exc)) from None
    if on_fail == "rollback":
        if gate.metric not in LIVE_METRICS:  # judged live after the switch, like an abort_on_fail gate
            raise ctx.error(on_fail_node, f"{field.removesuffix('.expr')}.on_fail",
                            f"on_fail: rollback needs a metric measured while the stage runs "
                            f"({', '.join(sorted(LIVE_METRICS))}); {gate.metric} is counted at the end")
        gate = replace(gate, on_fail="rollback")
    elif abort:
        gate = replace(gate, on_fail="abort")
    unit = gate.filter("unit")
    if unit is not None and int(unit) not in units_by_code():
        raise ctx.error(node, field, f"unknown unit code {unit} in the gate's filter (expected one of the 168 codes "
                                     f"of province {PROVINCE_CODE}; see 'rehearse wards')")
    return gate, node


def _on_fail(ctx: ReadContext, m: dict[str, yaml.Node], field: str, abort: bool) -> tuple[str, yaml.Node]:
    """A gate's ``on_fail`` (`rehearsal.plan.runbook.ON_FAIL`) and its node; at odds with abort_on_fail: refused."""
    node = m["on_fail"]
    value = read_text(ctx, node, f"{field}.on_fail")
    if value not in ON_FAIL:
        raise ctx.error(node, f"{field}.on_fail", unknown_choice("on_fail", value, ON_FAIL))
    if "abort_on_fail" in m and abort != (value == "abort"):
        raise ctx.error(node, f"{field}.on_fail", f"on_fail: {value} contradicts abort_on_fail: "
                                                  f"{str(abort).lower()} (write one of them)")
    return value, node


def read_gates(ctx: ReadContext, node: yaml.Node | None, field: str) -> tuple[Gate, ...]:
    """A stage's or the run's ``gates``: names unique, and no figure given gates that cannot all pass."""
    if is_null(node):
        return ()
    assert node is not None
    gates: list[Gate] = []
    names: dict[str, int] = {}
    for i, item in enumerate(read_list(ctx, node, field)):
        gate, expr_node = _gate(ctx, item, f"{field}[{i}]")
        if gate.name in names:
            raise ctx.error(item, f"{field}[{i}]", f"gate {gate.name!r} is given twice (first as "
                                                   f"{field}[{names[gate.name]}]; expected unique names)")
        names[gate.name] = i
        same = [g for g in gates if g.key == gate.key] + [gate]
        if not satisfiable(same):
            exprs = " and ".join(repr(g.expr) for g in same)
            # The line is the gate that made the set impossible; the field is the list, since the
            # mistake is in no single gate.
            raise ctx.error(expr_node, field, f"contradictory gates on {gate.key}: {exprs} cannot all pass")
        gates.append(gate)
    return tuple(gates)

