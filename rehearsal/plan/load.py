"""Loading a plan: the scenario file read, composed and walked once at the edge, and described back.

`load_plan(path)` returns a `Plan` or raises the one `PlanError` that names
the file, the line, the field and what was expected; `describe_plan` gives
the lines `rehearse validate` prints.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from ..errors import PlanError
from ..shared.formats import duration as format_duration
from .gates import read_gates
from .model import Plan, Stage
from .nodes import ReadContext, read_list, read_mapping, read_number, read_text
from .stage import STAGE_KEYS, read_stage

_TOP_KEYS = ("name", "description", "target", "time_scale", "seed", "baseline", "gates", "stages")


def load_plan(path: str | Path, *, time_scale: float | None = None) -> Plan:
    """Read and validate a scenario file; `time_scale` overrides the file's. Raises `PlanError`."""
    file = str(path)
    ctx = ReadContext(file)
    try:
        # utf-8-sig: a file saved by an editor that writes a byte-order mark still reads.
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PlanError("no such file (expected a scenario YAML, e.g. scenarios/demo.yaml)", file=file) from None
    except UnicodeDecodeError as exc:
        raise PlanError(f"cannot read the file: not UTF-8 text (byte {exc.start})", file=file) from None
    except OSError as exc:
        raise PlanError(f"cannot read the file: {exc.strerror or exc}", file=file) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanError(f"not valid YAML: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    if root is None:
        raise PlanError("the file is empty (expected a scenario with name and stages; see docs/scenarios.md)",
                        file=file)
    m = read_mapping(ctx, root, "", _TOP_KEYS, required=("name", "stages"))
    name = read_text(ctx, m["name"], "name", slug=True)
    description = read_text(ctx, m["description"], "description") if "description" in m else ""
    target = read_text(ctx, m["target"], "target") if "target" in m else "reference"
    scale = float(read_number(ctx, m["time_scale"], "time_scale", positive=True)) if "time_scale" in m else 1.0
    if time_scale is not None:
        if isinstance(time_scale, bool) or not math.isfinite(time_scale) or time_scale <= 0:
            raise PlanError(f"expected a number greater than 0 (it overrides the file's time_scale); "
                            f"found {time_scale:g}", file=file, field="--time-scale")
        scale = float(time_scale)
    seed = int(read_number(ctx, m["seed"], "seed", integer=True)) if "seed" in m else 1
    stage_nodes = read_list(ctx, m["stages"], "stages")
    if not stage_nodes:
        raise ctx.error(m["stages"], "stages", "expected at least one stage; found an empty list")
    stages: list[Stage] = []
    first: dict[str, int] = {}
    for i, node in enumerate(stage_nodes):
        stage = read_stage(ctx, node, f"stages[{i}]", seed=seed, time_scale=scale)
        if stage.name in first:
            name_node = read_mapping(ctx, node, f"stages[{i}]", STAGE_KEYS)["name"]
            raise ctx.error(name_node, f"stages[{i}].name", f"stage name {stage.name!r} is used twice (first by "
                                                            f"stages[{first[stage.name]}]; expected unique names)")
        first[stage.name] = i
        stages.append(stage)
    gates = read_gates(ctx, m.get("gates"), "gates")
    if any(g.abort_on_fail for g in gates):
        bad = next(i for i, g in enumerate(gates) if g.abort_on_fail)
        raise ctx.error(read_list(ctx, m["gates"], "gates")[bad], f"gates[{bad}].abort_on_fail",
                        "a gate on the whole run cannot abort a stage: put it under the stage's gates")
    baseline = read_text(ctx, m["baseline"], "baseline") if "baseline" in m else None
    return Plan(name=name, description=description, target=target, time_scale=scale, seed=seed,
                stages=tuple(stages), source=Path(path).resolve(), file=file, gates=gates, baseline=baseline)


# -- what `rehearse validate` prints -----------------------------------------------

def describe_plan(plan: Plan) -> list[str]:
    """A few lines a person can check a plan by: stages, units, users, simulated and wall-clock times."""
    lines = [f"{plan.file or plan.source}: plan {plan.name!r}, {len(plan.stages)} stage(s), target {plan.target}, "
             f"time scale x{plan.time_scale:g}, seed {plan.seed}"]
    for s in plan.stages:
        lead = s.officers.sign_in_lead_s
        parts = (f"officers' lead {format_duration(lead)} + " if lead else "") \
            + f"filing {format_duration(s.duration_s)}" \
            + (f" + grace {format_duration(s.grace_s)}" if s.grace_s else "")
        lines.append(f"  {s.name}: {len(s.units)} units, {s.officers.per_unit * len(s.units)} officers "
                     f"({s.officers.per_unit}/unit), {s.citizens.users} citizens; {parts} = "
                     f"{format_duration(s.total_s)} simulated, {format_duration(plan.wall_s(s.total_s))} "
                     f"wall-clock; {len(s.gates)} gate(s)"
                     + (f", {len(s.faults)} fault(s)" if s.faults else "")
                     + (f", cutover at {format_duration(s.cutover.at_s)} from {s.cutover.from_system} "
                        f"({len(s.cutover.units or s.units)} units)" if s.cutover else ""))
    return lines
