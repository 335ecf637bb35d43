"""Bad command lines: one line on stderr that names the problem, exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port, sigint_ignored

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


def _setup_paths(tmp: Path) -> None:
    """A plain file, a binary 'scenario', broken run directories: what a careless command line points at."""
    (tmp / "file").write_text("not a directory\n", encoding="utf-8")
    (tmp / "binary.yaml").write_bytes(b"\xff\xfe\x00name: x\n")
    (tmp / "junit-dir").mkdir()
    (tmp / "empty").mkdir()
    for name, text in (("broken", "{bad"), ("not-summary", "[]"), ("no-stages", '{"verdict": "GO"}')):
        (tmp / name).mkdir()
        (tmp / name / "summary.json").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("argv, fragment", [
    (["validate", "scenarios/demo.yaml", "--time-scale", "nan"], "--time-scale: expected a number greater than 0"),
    (["run", "scenarios/demo.yaml", "--time-scale", "-1"], "--time-scale: expected a number greater than 0"),
    (["run", "scenarios/demo.yaml", "--time-scale", "1e999"], "--time-scale: expected a number greater than 0"),
    (["run", "scenarios/demo.yaml", "--workers", "-1"], "expected 0 to 64 worker processes"),
    (["run", "scenarios/demo.yaml", "--web-ui", "-5"], "--web-ui: expected a port from 0 to 65535"),
    (["run", "scenarios/demo.yaml", "--web-ui", "99999"], "--web-ui: expected a port from 0 to 65535"),
    (["worker", "scenarios/demo.yaml", "--master", "127.0.0.1", "--processes", "0"], "expected 1 to 64"),
    (["worker", "scenarios/demo.yaml", "--master", "a b:5557"], "--master 'a b:5557'"),
    (["run", "scenarios/demo.yaml", "--master-bind", "0.0.0.0:99999"], "--master-bind '0.0.0.0:99999'"),
    (["dashboard", "{tmp}/empty", "--port", "99999"], "--port: expected a port from 0 to 65535"),
    (["run", "scenarios"], "scenarios: cannot read the file"),
    (["validate", "{tmp}/binary.yaml"], "not UTF-8"),
    (["validate", "{tmp}/file/plan.yaml"], "Not a directory"),
    (["run", "scenarios/demo.yaml", "--reports-dir", "{tmp}/file"], "--reports-dir {tmp}/file: not a directory"),
    (["run", "scenarios/demo.yaml", "--reports-dir", "{tmp}/file/runs"], "cannot make the directory"),
    (["run", "scenarios/demo.yaml", "--junit", "{tmp}/junit-dir"], "--junit {tmp}/junit-dir: is a directory"),
    (["run", "scenarios/demo.yaml", "--junit", "{tmp}/file/junit.xml"], "--junit {tmp}/file: not a directory"),
    (["run", "scenarios/demo.yaml", "--confirm-target"], "--confirm-target: expected one argument"),
    (["run", "scenarios/demo.yaml", "--target", "local", "--confirm-target", "staging.example.vn"],
     "--confirm-target 'staging.example.vn' confirms no host of this run"),
    (["run", "scenarios/demo.yaml", "--target-url", ""], "target URL '': empty; refusing it"),
    (["gate", "{tmp}/missing"], "{tmp}/missing: no such run directory"),
    (["report", "{tmp}/missing"], "{tmp}/missing: no such run directory"),
    (["dashboard", "{tmp}/missing"], "{tmp}/missing: no such run directory"),
    (["baseline", "save", "{tmp}/missing", "x"], "{tmp}/missing: no such run directory"),
    *[([command, f"{{tmp}}/{name}"], f"{{tmp}}/{name}/summary.json")
      for command in ("gate", "report", "dashboard") for name in ("empty", "broken", "not-summary", "no-stages")],
])
def test_careless_command_lines_exit_2_with_one_line(argv: list[str], fragment: str, tmp_path: Path) -> None:
    """Each before any load is sent (a run's outputs are checked before it starts, not after it)."""
    _setup_paths(tmp_path)
    proc = _rehearse(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment.replace("{tmp}", str(tmp_path)) in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "harness bug" not in proc.stderr
    assert not (tmp_path / "file" / "runs").exists()


def test_an_unreadable_scenario_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root reads any file it may open: this one cannot be read by anyone
        path = "/proc/self/mem"
    else:
        unreadable = tmp_path / "plan.yaml"
        unreadable.write_text("name: x\n", encoding="utf-8")
        unreadable.chmod(0)
        path = str(unreadable)
    proc = _rehearse("validate", path)
    assert proc.returncode == 2 and proc.stderr.startswith(f"rehearse: error: {path}: cannot read the file")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_target_that_never_answers_writes_its_report_and_exits_2(tmp_path: Path) -> None:
    """Nothing listens at the target: one line says so; the summary, the page and the JUnit file are written."""
    junit = tmp_path / "not" / "yet" / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", "scenarios/ci.yaml", "--target", "local",
                           "--target-url", f"http://127.0.0.1:{free_port()}", "--reports-dir", str(tmp_path / "r"),
                           "--junit", str(junit)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("rehearse: error: the target never answered: http://127.0.0.1:") and "refused" in last
    run_dir = next((tmp_path / "r").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "INCOMPLETE" and summary["stages"] == []
    assert any("never answered" in e for e in summary["errors"])
    assert (run_dir / "index.html").stat().st_size > 0 and junit.exists()
    assert not (run_dir / "ledger").exists()  # no request was sent: no user ever started


@pytest.mark.parametrize(("delay_s", "inherited"), [(0.6, "default"), (2.0, "default"), (5.0, "default"),
                                                    (0.6, "ignored"), (2.0, "ignored")])
def test_ctrl_c_at_start_is_one_line_and_exit_2(delay_s: float, inherited: str, tmp_path: Path) -> None:
    """Ctrl-C in the terminal (SIGINT to the whole process group) while a run is starting up.

    Also when the harness was started with SIGINT ignored: its portals and
    Locust get the default back, so the harness must stop on it too (it once
    ran on to the end, or said a portal "exited at start").
    """
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", "scenarios/demo.yaml", "--reports-dir",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True, preexec_fn=sigint_ignored if inherited == "ignored" else None)
    time.sleep(delay_s)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("rehearse: interrupted"), err


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    """``rehearse wards | head -1``: the reader closes the pipe; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "wards"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 0 and err == "", err
