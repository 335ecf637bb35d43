"""What every benchmark under tools/bench/ shares: publishing figures, a portal to aim at, CPU accounting.

- `publish` prints the figures and keeps them as JSON (``reports/bench/*.json``);
  docs/benchmarks.md quotes only numbers written there.
- `start_portal` serves the reference portal in its own process on an
  ephemeral loopback port (load never leaves 127.0.0.1), started as the
  harness starts its own (`rehearsal.run.portals`).
- `calibrate` measures the machine: a bare ``FastHttpUser``'s requests per
  CPU-second against the same portal (`BARE_USER`), printed beside every
  figure a benchmark publishes, with how busy the machine was (`Busy`).
- `CpuSampler` reads, every second, the CPU seconds used by each process of
  interest (psutil, per process, by role: portal, locust, harness) and by the
  whole machine, so a benchmark can say what each side cost over any window
  of its run, and how much of the machine was someone else's (this machine is
  shared: tests of other people run beside the benchmarks).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as scripts (python3 tools/bench/x.py): the checkout's package, not an installed one

from rehearsal.errors import RunError  # noqa: E402
from rehearsal.run.portals import PortalProcess  # noqa: E402
from rehearsal.run.processes import stop_process  # noqa: E402
BENCH_DIR = ROOT / "reports" / "bench"


def publish(figures: dict[str, Any], out: str | Path) -> None:
    """Print `figures` and write them to `out` (directories created)."""
    text = json.dumps(figures, indent=1, ensure_ascii=False)
    print(text)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def raise_open_files() -> int:
    """Raise this process's soft limit on open files to the hard limit; children inherit it.

    Thousands of users are thousands of keep-alive connections, each an open
    file in the generator and in the portal.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # root may raise the hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 65536), max(hard, 65536)))
    except (ValueError, OSError):
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def put_json(url: str, body: Any, timeout: float = 5.0) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def start_portal(workdir: Path, *extra: str, script: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The reference portal (or `script` serving it) on 127.0.0.1, an ephemeral port; (process, URL).

    Started the harness's one way (`rehearsal.run.portals.PortalProcess`): polled until it answers, and
    it dies with the benchmark.
    """
    portal = PortalProcess(workdir, *extra, script=script)
    try:
        url = portal.start()
    except RunError as exc:
        raise SystemExit(str(exc)) from None
    assert portal.proc is not None
    return portal.proc, url


def stop(proc: subprocess.Popen[Any], sig: int = 15, timeout: float = 20) -> None:
    """Stop a process this benchmark started (by its pid only)."""
    stop_process(proc, sig, timeout)


def role_of(proc: psutil.Process) -> str | None:
    """portal, locust or harness (`rehearse run`), from the command line; None for anything else."""
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return None
    if "rehearsal.portal" in cmd or "portal_timed" in cmd:
        return "portal"
    if "locust" in cmd:
        return "locust"
    if "rehearsal.cli" in cmd:
        return "harness"
    return None


@dataclass
class CpuSampler:
    """Samples CPU seconds per role (the processes under `roots`, by `role_of`) and of the machine.

    ``rows`` is a list of ``{"t": wall time, "machine": busy CPU seconds of
    all cores, role: CPU seconds (user + system) summed over that role's
    processes, ...}``; a process that has exited keeps its last figure in its
    role's sum, so totals never go down.
    """

    roots: list[int]
    every_s: float = 1.0
    rows: list[dict[str, float]] = field(default_factory=list)
    _last: dict[int, tuple[str, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> dict[str, float]:
        procs: dict[int, psutil.Process] = {}
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                procs[pid] = root
                for child in root.children(recursive=True):
                    procs[child.pid] = child
            except psutil.Error:
                continue
        for pid, p in procs.items():
            try:
                role = role_of(p)
                if role:
                    t = p.cpu_times()
                    self._last[pid] = (role, t.user + t.system)
            except psutil.Error:
                pass
        machine = psutil.cpu_times()
        row: dict[str, float] = {"t": time.time(),
                                 "machine": machine.user + machine.nice + machine.system + machine.irq + machine.softirq}
        for role, cpu in self._last.values():
            row[role] = row.get(role, 0.0) + cpu
        self.rows.append(row)
        return row

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def start(self) -> CpuSampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()

    def window(self, t0: float, t1: float) -> dict[str, float]:
        """Mean CPU per role over [t0, t1] in % of one core (100 = one full core); ``others``: the rest of the machine."""
        inside = [r for r in self.rows if t0 <= r["t"] <= t1]
        if len(inside) < 2:
            return {}
        a, b = inside[0], inside[-1]
        span = b["t"] - a["t"]
        out = {role: round(100 * (b.get(role, 0.0) - a.get(role, 0.0)) / span, 1)
               for role in b if role not in ("t",)}
        ours = sum(v for k, v in out.items() if k != "machine")
        out["others"] = round(max(0.0, out.get("machine", 0.0) - ours), 1)
        return out

    def seconds(self, t0: float, t1: float, role: str) -> float:
        """CPU seconds `role` used between the samples nearest inside [t0, t1]."""
        inside = [r for r in self.rows if t0 <= r["t"] <= t1]
        return inside[-1].get(role, 0.0) - inside[0].get(role, 0.0) if len(inside) >= 2 else 0.0


#: A bare Locust user: ``GET /api/health`` with no wait (the calibration, and overhead.py's side B).
BARE_USER = '''
from locust import FastHttpUser, task


class BareUser(FastHttpUser):
    @task
    def health(self):
        self.client.get("/api/health")
'''


def health_count(url: str) -> int:
    """``GET /api/health`` requests the portal has counted itself."""
    return int(get_json(url + "/api/stats")["requests"].get("GET /api/health", {}).get("count", 0))


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


class Busy:
    """How busy the whole machine was between `start` and `stop`: % of all cores, and the load average."""

    def __init__(self) -> None:
        self.load_start = os.getloadavg()[0]
        psutil.cpu_percent(None)  # starts its interval

    def stop(self) -> dict[str, Any]:
        return {"machine_busy_percent": psutil.cpu_percent(None), "load_avg_1m": [round(self.load_start, 2),
                                                                                   round(os.getloadavg()[0], 2)]}


class LocustRound:
    """One headless Locust process, measured over a window its caller chooses (`mark` twice)."""

    def __init__(self, locustfile: Path, url: str, work: Path, tag: str, *, users: int, seconds: int,
                 extra: list[str] | None = None, cwd: Path = ROOT, count: Any = health_count) -> None:
        cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url, "-u", str(users),
               "-r", str(users), "-t", f"{seconds}s", "--only-summary", "--loglevel", "WARNING",
               "--exit-code-on-error", "0", *(extra or [])]
        self.url, self.count, self.seconds = url, count, seconds
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL,
                                     stderr=(work / f"{tag}.err").open("wb"))
        self.ps = psutil.Process(self.proc.pid)
        self.marks: list[tuple[float, float, int]] = []

    def mark(self) -> None:
        """Note the time, the process's CPU seconds and the portal's count (twice: the window's two ends)."""
        self.marks.append((time.time(), cpu_s(self.ps), self.count(self.url)))

    def finish(self) -> dict[str, Any]:
        """Wait for the process; the window's figures."""
        self.proc.wait(self.seconds + 60)
        (t0, c0, r0), (t1, c1, r1) = self.marks[0], self.marks[-1]
        requests, cpu, wall = r1 - r0, c1 - c0, t1 - t0
        return {"requests": requests, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                "requests_per_s": round(requests / wall, 1), "generator_cpu_percent": round(100 * cpu / wall, 1),
                "requests_per_cpu_s": round(requests / cpu, 1) if cpu else None, "exit_code": self.proc.returncode}


def locust_round(locustfile: Path, url: str, work: Path, tag: str, *, users: int, seconds: int,
                 extra: list[str] | None = None, cwd: Path = ROOT, count: Any = health_count,
                 profile_out: Path | None = None) -> dict[str, Any]:
    """One headless Locust process for `seconds`, measured over its middle: requests the portal counted
    (`count`), CPU seconds of the Locust process, how busy the machine was meanwhile (py-spy into
    `profile_out` over that middle, if given)."""
    r = LocustRound(locustfile, url, work, tag, users=users, seconds=seconds, extra=extra, cwd=cwd, count=count)
    settle = min(5.0, seconds / 4)
    time.sleep(settle)
    r.mark()
    busy = Busy()
    spy = profile(r.proc.pid, seconds - 2 * settle - 1, profile_out) if profile_out else None
    time.sleep(seconds - 2 * settle)
    r.mark()
    load = busy.stop()
    figures = r.finish()
    if spy is not None:
        spy.wait()
    return {**figures, **load}


def locust_rounds_together(rounds: list[LocustRound], seconds: int) -> list[dict[str, Any]]:
    """Started at once by the caller: each measured over the same middle, so the machine's moods fall on all."""
    settle = min(5.0, seconds / 4)
    time.sleep(settle)
    for r in rounds:
        r.mark()
    busy = Busy()
    time.sleep(seconds - 2 * settle)
    for r in rounds:
        r.mark()
    load = busy.stop()
    return [{**r.finish(), **load} for r in rounds]


def calibrate(url: str, work: Path, *, seconds: int = 12, users: int = 20) -> dict[str, Any]:
    """The machine's calibration: a bare ``FastHttpUser``'s requests per CPU-second against `url` (printed)."""
    bare = work / "calibration_user.py"
    bare.write_text(BARE_USER)
    r = locust_round(bare, url, work, "calibration", users=users, seconds=seconds)
    figures = {"bare_fasthttpuser_requests_per_cpu_s": r["requests_per_cpu_s"], "endpoint": "GET /api/health",
               "users": users, "seconds": seconds, "machine_busy_percent": r["machine_busy_percent"],
               "load_avg_1m": r["load_avg_1m"]}
    print(f"calibration: a bare FastHttpUser makes {r['requests_per_cpu_s']} requests per CPU-second here "
          f"(machine {r['machine_busy_percent']} % busy, load {r['load_avg_1m']})", file=sys.stderr, flush=True)
    return figures


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import platform
    from importlib.metadata import version

    # Not `import locust`: it would monkey-patch this process (CpuSampler's thread is a real thread).
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "locust": version("locust"),
            "gevent": version("gevent"), "date": time.strftime("%Y-%m-%d")}


def profile(pid: int, seconds: float, out: Path, rate: int = 50) -> subprocess.Popen[bytes] | None:
    """Start py-spy sampling `pid` for `seconds` into `out` (collapsed stacks); None without py-spy."""
    import shutil

    if not shutil.which("py-spy"):
        print("py-spy is not installed (python3 -m pip install py-spy): no profile", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
                             str(rate), "--format", "raw", "--nonblocking", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_functions(collapsed: Path, n: int = 15) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: the `n` functions with the most samples on CPU, self and inclusive (%)."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    if not collapsed.exists():
        return {"self": [], "inclusive": []}
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        k = int(count)
        total += k
        own[frames[-1]] = own.get(frames[-1], 0) + k
        for f in set(frames):
            incl[f] = incl.get(f, 0) + k

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, round(100 * c / total, 1)) for f, c in sorted(d.items(), key=lambda x: -x[1])[:n]] if total else []

    return {"self": top(own), "inclusive": top(incl), "samples": total}
