"""The docs stay honest: every command has help and appears in the README."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from rehearsal.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_there_are_commands() -> None:
    assert {"wards", "run", "demo", "report"} <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_and_is_in_the_readme(command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "rehearsal.cli", command, "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: rehearse " + command in proc.stdout
    assert f"`rehearse {command}" in README, f"'rehearse {command}' is not documented in README.md"


def test_readme_set_up_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = "python3 -m pip install -e '.[test]' && python3 -m pytest"
    assert test_command in README
    assert test_command in ci
