"""Gates: thresholds a stage must meet. A pure function; exit codes are decided at the edge."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .plan import Gate

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class GateResult:
    """One gate against one stage's figures."""

    name: str
    expr: str
    observed: float | None
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "expr": self.expr, "observed": self.observed, "passed": self.passed}


def evaluate(gates: Iterable[Gate], metrics: Mapping[str, float | None]) -> list[GateResult]:
    """Each gate against `metrics`; a metric that was not measured fails its gate."""
    results = []
    for gate in gates:
        observed = metrics.get(gate.metric)
        passed = observed is not None and bool(_OPS[gate.op](observed, gate.threshold))
        results.append(GateResult(name=gate.name, expr=gate.expr, observed=observed, passed=passed))
    return results
