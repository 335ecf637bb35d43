"""Bad command lines: one line on stderr that names the problem, exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _rehearse(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rehearsal.cli", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.mark.parametrize("argv, fragment", [
    (["run"], "the following arguments are required: scenario"),
    (["run", "scenarios/demo.yaml", "--time-scale", "fast"], "invalid float value"),
    (["run", "scenarios/demo.yaml", "--time-scale", "-2"], "--time-scale: expected a number greater than 0"),
    (["run", "scenarios/demo.yaml", "--stage", "nope"], "unknown stage 'nope'"),
    (["run", "scenarios/demo.yaml", "--target", "production"], "unknown target 'production'"),
    (["run", "scenarios/demo.yaml", "--target-url", "http://10.1.2.3:8000"], "not in allowed_hosts"),
    (["run", "tests/bad_scenarios/unknown-unit-code.yaml"], "tests/bad_scenarios/unknown-unit-code.yaml:"),
    (["run", "tests/bad_scenarios/empty.yaml"], "tests/bad_scenarios/empty.yaml"),
    (["report", "no/such/run"], "no/such/run"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_command_lines_exit_2_with_one_line(argv: list[str], fragment: str) -> None:
    proc = _rehearse(*argv)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
