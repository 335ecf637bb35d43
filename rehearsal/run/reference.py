"""The embedded ``reference`` target: the reference systems a run starts itself, on loopback, in its run directory.

A national portal (``national.sqlite``, ``national.log``) and HCMC's
provincial one-stop system (``provincial.sqlite``, ``provincial.log``)
with the city portal's front door on its second port and its link agent
pulling from and pushing to the national portal (``--national-url``). A plan
whose stage cuts over ``from: brvt`` or ``from: binh-duong`` also gets that
former province's one-stop system with its own front door and no link
(``brvt.sqlite``, ``binh-duong.sqlite``): its units work there until the
cutover moves them onto HCMC's platform. Each is a `PortalProcess` (port 0,
a port file, ``/api/health`` polled; dies with the harness). `start`
returns the run's `Systems`, which the runner writes to ``systems.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import RunError
from ..plan import Stage
from .portals import POLL_S, PortalProcess, answers
from .systems import FORMER_PROVINCES, SystemEntry, Systems, cutover_from

#: The file names (``<name>.sqlite``, ``.log``, ``.port``) of each system in the run directory.
FILE_NAMES = {"national": "national", "hcmc": "provincial", "brvt": "brvt", "binh-duong": "binh-duong"}


def former_provinces(stages: Iterable[Stage]) -> list[str]:
    """The former provinces' systems the stages' cutovers move units off, in plan order."""
    out: list[str] = []
    for stage in stages:
        if stage.cutover is not None:
            source = cutover_from(stage.cutover)
            if source in FORMER_PROVINCES and source not in out:
                out.append(source)
    return out


class ProvincialProcess(PortalProcess):
    """A provincial system with its city-style front door on a second port."""

    def __init__(self, workdir: Path, name: str, *args: str) -> None:
        file_name = FILE_NAMES.get(name, name)
        self.door_port_file = Path(workdir).absolute() / f"{file_name}.door.port"
        super().__init__(workdir, "--system", "provincial", "--name", name, "--front-door-port", "0",
                         "--front-door-port-file", str(self.door_port_file), *args, name=file_name)
        self.door_url = ""

    def start(self, timeout: float = 60.0) -> str:
        self.door_port_file.unlink(missing_ok=True)
        url = super().start(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.door_port_file.read_text().strip() if self.door_port_file.exists() else ""
            if text.isdigit() and answers(f"http://127.0.0.1:{int(text)}", timeout=1.0):
                self.door_url = f"http://127.0.0.1:{int(text)}"
                return url
            time.sleep(POLL_S)
        self.stop()
        raise RunError(f"the front door of {self.name} did not answer within {timeout:.0f} s; see {self.log_path}")


class ReferenceSystems:
    """The reference systems of one run: started together, stopped together."""

    def __init__(self, run_dir: Path, *, time_scale: float, officers_per_unit: int,
                 former: Iterable[str] = ()) -> None:
        self.run_dir = run_dir
        self.common = ("--time-scale", str(time_scale), "--officers-per-unit", str(officers_per_unit))
        self.former = list(former)
        self.processes: list[PortalProcess] = []

    def start(self) -> Systems:
        """Start every system (national first: the link needs it) and return where they answer."""
        national = PortalProcess(self.run_dir, "--system", "national", *self.common, name=FILE_NAMES["national"])
        self.processes.append(national)
        national_url = national.start()
        hcmc = ProvincialProcess(self.run_dir, "hcmc", *self.common, "--national-url", national_url)
        self.processes.append(hcmc)
        hcmc_url = hcmc.start()
        entries = [SystemEntry("national", "national", national_url),
                   SystemEntry("hcmc", "provincial", hcmc_url, front_door_url=hcmc.door_url, front_door="city")]
        for name in self.former:
            system = ProvincialProcess(self.run_dir, name, *self.common)
            self.processes.append(system)
            url = system.start()
            entries.append(SystemEntry(name, "provincial", url, front_door_url=system.door_url))
        return Systems(entries)

    def pids(self) -> dict[str, int]:
        """Each system's process id (for its CPU seconds at the end)."""
        return {p.name: p.proc.pid for p in self.processes if p.proc is not None}

    def stop(self) -> None:
        for process in reversed(self.processes):  # the provincial systems first: their links stop with them
            process.stop()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (``/proc/<pid>/stat``); None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """The live children of a process (``/proc/<pid>/task/*/children``)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return out


def write_cpu(path: Path, reference: ReferenceSystems) -> None:
    """``cpu.json``: each system process's CPU seconds, and its children's (the link agent), before they stop."""
    out: dict[str, float | None] = {}
    for name, pid in reference.pids().items():
        out[name] = cpu_seconds(pid)
        for child in children(pid):
            out[f"{name}.child-{child}"] = cpu_seconds(child)
    try:
        path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    except OSError:
        pass  # a measurement, not worth failing the run over
