"""JUnit XML of a run's gates, for CI systems that show test results (GitHub, GitLab, Jenkins).

One ``<testsuite>`` per stage and one for the whole run; in each, one
``<testcase>`` per gate (a failed gate carries ``<failure>`` with observed
against expected; a baseline gate with no baseline figure is ``<skipped>``),
plus ``stage ran to its end`` (an ``<error>`` if the stage did not finish).
Stages of the plan that were not run (an earlier one aborted, or the run was
cut short) are listed with a skipped test case, so the file always shows
the whole plan. Written with the standard library; the tests read it back
with ``junitparser``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..plan import Plan
from .gates import gate_status, gate_text


def _case(suite: ET.Element, classname: str, gate: dict[str, Any]) -> tuple[int, int]:
    """One gate's test case; returns (failures, skipped) it adds."""
    case = ET.SubElement(suite, "testcase", classname=classname, name=str(gate["name"]), time="0")
    status = gate_status(gate)
    text = gate_text(gate, label="expr")
    if status == "failed":
        failure = ET.SubElement(case, "failure", message=text, type="GateFailed")
        failure.text = text
        return 1, 0
    if status == "skipped":
        ET.SubElement(case, "skipped", message=gate.get("detail") or "skipped")
        return 0, 1
    out = ET.SubElement(case, "system-out")
    out.text = text
    return 0, 0


def junit_xml(summary: dict[str, Any], plan: Plan | None = None) -> ET.ElementTree:
    """The JUnit document of a run's summary (with gates already judged)."""
    scenario = str(summary.get("scenario") or "run")
    root = ET.Element("testsuites", name=f"rehearse {scenario}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seen = set()

    def suite_for(name: str, duration: float | None) -> ET.Element:
        return ET.SubElement(root, "testsuite", name=f"{scenario}.{name}",
                             time=f"{duration or 0:.1f}", timestamp=str(summary.get("started_at") or ""))

    for stage in summary.get("stages", []):
        seen.add(stage["name"])
        suite = suite_for(stage["name"], None)
        classname = f"rehearse.{scenario}.{stage['name']}"
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        ran = ET.SubElement(suite, "testcase", classname=classname, name="stage ran to its end", time="0")
        counts["tests"] += 1
        if stage.get("verdict") == "INCOMPLETE":
            err = ET.SubElement(ran, "error", type="StageIncomplete",
                                message="the stage did not run to its planned end (see summary.json errors)")
            err.text = "verdict INCOMPLETE"
            counts["errors"] += 1
        elif stage.get("aborted"):
            ab = stage["aborted"]
            out = ET.SubElement(ran, "system-out")
            out.text = f"aborted early by gate {ab.get('gate')!r} at {ab.get('at_s')} s (simulated)"
        for gate in stage.get("gates", []):
            f, s = _case(suite, classname, gate)
            counts["tests"] += 1
            counts["failures"] += f
            counts["skipped"] += s
        props = ET.Element("properties")
        for key, value in (("verdict", stage.get("verdict")), ("units", stage.get("units")),
                           ("completion_rate", stage.get("completion_rate")),
                           ("sessions_peak_portal", (stage.get("sessions") or {}).get("peak_portal"))):
            ET.SubElement(props, "property", name=key, value=str(value))
        suite.insert(0, props)
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    if plan is not None:
        for stage in plan.stages:
            if stage.name in seen:
                continue
            suite = suite_for(stage.name, None)
            case = ET.SubElement(suite, "testcase", classname=f"rehearse.{scenario}.{stage.name}",
                                 name="stage ran to its end", time="0")
            ET.SubElement(case, "skipped", message="not run (an earlier stage was aborted, or not selected)")
            for k, v in (("tests", 1), ("failures", 0), ("errors", 0), ("skipped", 1)):
                suite.set(k, str(v))
                totals[k] += v
    if summary.get("gates"):
        suite = suite_for("run", None)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for gate in summary["gates"]:
            f, s = _case(suite, f"rehearse.{scenario}.run", gate)
            counts["tests"] += 1
            counts["failures"] += f
            counts["skipped"] += s
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def write_junit(summary: dict[str, Any], path: Path, plan: Plan | None = None) -> Path:
    """Write the run's JUnit XML to `path` (directories created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(summary, plan).write(path, encoding="utf-8", xml_declaration=True)
    return path
