"""The docs stay honest: every command has help and appears in the README."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    test_command = ("python3 -m pip install -e '.[test]' && python3 -m pytest && "
                    "rehearse run scenarios/ci.yaml --junit reports/ci/junit.xml")
    assert test_command in README
    assert test_command in ci.splitlines()


def _rehearse_lines(text: str) -> list[list[str]]:
    """Every `rehearse ...` command line in a pipeline file (folded '>' blocks joined)."""
    import shlex

    out = []
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for chunk in re.findall(r"(rehearse [^\n]+(?:\n\s+--[^\n]+)*)", text):
        out.append(shlex.split(" ".join(chunk.split())))
    return out


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_example_pipelines_run_the_gate_and_publish_report_and_junit(name: str) -> None:
    text = (ROOT / "examples" / "ci" / name).read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    lines = _rehearse_lines(text)
    run = [argv for argv in lines if argv[1] == "run"]
    assert run, "no 'rehearse run' in the pipeline"
    for argv in lines:
        args = build_parser().parse_args(argv[1:])  # every command line is one the CLI accepts
        assert callable(args.func)
    argv = run[0]
    assert argv[2] == "scenarios/ci.yaml" and "--junit" in argv
    junit = argv[argv.index("--junit") + 1]
    assert (ROOT / argv[2]).exists()
    if name == "gitlab-ci.yml":
        job = doc["rehearsal-gate"]
        assert job["artifacts"]["reports"]["junit"] == junit and "reports/" in job["artifacts"]["paths"]
        assert job["artifacts"]["when"] == "always"
    else:
        steps = doc["jobs"]["gate"]["steps"]
        uses = {s.get("uses", "").split("@")[0]: s for s in steps}
        assert "reports/" in uses["actions/upload-artifact"]["with"]["path"]
        assert uses["mikepenz/action-junit-report"]["with"]["report_paths"] == junit
        assert all(s.get("if") == "always()" for s in (uses["actions/upload-artifact"],
                                                        uses["mikepenz/action-junit-report"]))
