"""Workers on other hosts, for real: three machines made of network namespaces, a slow link, a cut cable.

Host ``a`` (10.200.0.1) runs the reference portal and the run's Locust master;
hosts ``b`` and ``c`` each run `rehearse worker`. They meet on a bridge in a
fourth namespace (the switch), each over its own link, each with its own
hostname (a UTS namespace: Locust's worker ids say the host). Nothing is on
loopback: the target is allowed and confirmed (``--confirm-target``). Nothing
on a command line can add a host to the allowed list (a typo must not send
load), so each process of these hosts runs in a mount namespace where a
test-only targets file is bind-mounted over ``config/targets.yaml``: the
shipped file is never touched. The load hosts' links are delayed 20 ms each
way, with ``tc … netem`` where the kernel has it; where it has not
(``CONFIG_NET_SCH_NETEM`` unset, no module to load, as on this machine) each
is two TAP devices joined by a delay line (`WIRE`) doing netem's job.

- No delay: the ledger (merged on the master) is exactly the portal's database.
- 20 ms each way, host ``b``'s link set down mid-stage: the master notices
  (``workers.jsonl``, ``summary.json``'s ``workers.lost``), host ``c`` takes
  its users, no dossier is lost, and a dossier the ledger lacks can only be
  one host ``b`` filed whose answer or event was on the wire at the cut.
  Latency (all of it crossed a delayed link: what ``b`` measured after the
  cut never reached the master) is the first run's plus 40 ms and nothing
  else, on the stable figures of a cheap request: its minimum (a busy machine
  only adds to it) and, more loosely, its median.

Skipped, with the reason, only where namespaces cannot be made (not root, no
``ip``). A finalizer removes every namespace and process, even on failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import wait_for_filing

from rehearsal.cli import build_parser
from rehearsal.plan import load_plan
from rehearsal.results.latency import read_latency, tally
from rehearsal.results.ledger import read_events
from rehearsal.run.targets import resolve_target

ROOT = Path(__file__).resolve().parent.parent
ADDRESSES = {"a": "10.200.0.1", "b": "10.200.0.2", "c": "10.200.0.3"}
PORTAL, MASTER = f"http://{ADDRESSES['a']}:8000", f"{ADDRESSES['a']}:5557"  # ports of host a's own: no clash
DELAY_MS = 20.0
KNOCK = "import socket, sys; socket.create_connection((sys.argv[1], 9), 1)"  # refused: host a answered
#: The cheap request whose latency is compared (a VNeID OTP: one small insert, no files).
CHEAP = "POST /api/auth/vneid/otp"
STAGE = "hosts"
PLAN = f"""\
name: hosts
target: netns
time_scale: 120
seed: 29
stages:
  - name: {STAGE}
    units: {{codes: [26506, 26536, 25747, 26737]}}
    duration: 50m
    grace: 6m
    citizens: {{users: 16, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}}
    officers: {{think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}}
    gates: [lost_dossiers == 0, duplicated_dossiers == 0]
"""
TARGETS = f"""\
# Test-only (tests/test_netns_workers.py): bind-mounted over config/targets.yaml inside the test's hosts.
allowed_hosts: [127.0.0.1, "::1", localhost, {ADDRESSES['a']}]
targets:
  netns:
    url: {PORTAL}
    officer_password_env: REHEARSAL_OFFICER_PASSWORD
    admin_token_env: REHEARSAL_ADMIN_TOKEN
"""

#: A delay line between TAPs in two namespaces: each frame read from one is written to the other `delay` ms
#: later (FIFO: a constant delay keeps the order); a frame for a downed interface is lost, as on a cut cable.
WIRE = r"""
import collections, ctypes, fcntl, os, select, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)

def tap(namespace, name):
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET: the TAP is looked up in that namespace
        raise OSError(ctypes.get_errno(), f"setns {namespace}")
    dev = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(dev, 0x400454CA, struct.pack("16sH", name.encode(), 0x1002))  # TUNSETIFF, IFF_TAP | IFF_NO_PI
    return dev

delay = float(sys.argv[1]) / 1000
one, two = tap(sys.argv[2], sys.argv[3]), tap(sys.argv[4], sys.argv[5])
other, queue = {one: two, two: one}, {one: collections.deque(), two: collections.deque()}
print("ready", flush=True)
while True:
    heads = [q[0][0] for q in queue.values() if q]
    readable, _, _ = select.select([one, two], [], [], max(0.0, min(heads) - time.monotonic()) if heads else 1.0)
    for end in readable:
        for _ in range(64):
            try:
                queue[other[end]].append((time.monotonic() + delay, os.read(end, 65536)))
            except OSError:
                break
    for end, q in queue.items():
        while q and q[0][0] <= time.monotonic():
            try:
                os.write(end, q.popleft()[1])
            except OSError:
                pass
"""


class Hosts:
    """The test's machines: namespaces ``a``, ``b``, ``c`` and the switch, their links, their processes."""

    def __init__(self, workdir: Path) -> None:
        ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin")
        if ip is None or os.geteuid() != 0 or not shutil.which("unshare"):
            pytest.skip("hosts made of network namespaces need root, iproute2's 'ip' and util-linux's 'unshare'")
        self.ip, self.tc = ip, shutil.which("tc") or shutil.which("tc", path="/usr/sbin:/sbin:/usr/bin") or "tc"
        self.ns = {name: f"rh{os.getpid() % 100000}-{name}" for name in ("sw", "a", "b", "c")}
        self.workdir, self.targets = workdir, workdir / "targets.yaml"
        self.targets.write_text(TARGETS, encoding="utf-8")
        self.procs: list[subprocess.Popen[Any]] = []
        self.wires: list[subprocess.Popen[str]] = []
        self.netem = False

    def cmd(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
        return done

    def build(self) -> None:
        """The namespaces, the bridge, one link per host (veth, or TAPs for the delay line), addresses up."""
        ip, sw = self.ip, self.ns["sw"]
        made = self.cmd(ip, "netns", "add", sw, check=False)
        if made.returncode != 0:
            pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
        for host in ("a", "b", "c"):
            self.cmd(ip, "netns", "add", self.ns[host])
        self.cmd(ip, "-n", sw, "link", "add", "br0", "type", "bridge")
        self.cmd(ip, "-n", sw, "link", "set", "br0", "up")
        # netem if this kernel has it (tried on the bridge, then taken off).
        self.netem = self.cmd(self.tc, "-n", sw, "qdisc", "add", "dev", "br0", "root", "netem", "delay", "1ms",
                              check=False).returncode == 0
        if self.netem:
            self.cmd(self.tc, "-n", sw, "qdisc", "del", "dev", "br0", "root")
        for host, address in ADDRESSES.items():
            ns, port = self.ns[host], f"p{host}"
            if host == "a" or self.netem:
                self.cmd(ip, "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw)
            else:  # a load host's link is two TAPs and the delay line between them
                self.cmd(ip, "-n", ns, "tuntap", "add", "dev", "eth0", "mode", "tap")
                self.cmd(ip, "-n", sw, "tuntap", "add", "dev", port, "mode", "tap")
            for step in (["-n", sw, "link", "set", port, "master", "br0"], ["-n", sw, "link", "set", port, "up"],
                         ["-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"],
                         ["-n", ns, "link", "set", "eth0", "up"], ["-n", ns, "link", "set", "lo", "up"]):
                self.cmd(ip, *step)
        self.set_delay(0.0)

    def set_delay(self, ms: float) -> None:
        """Each load host's link delayed `ms` each way (0: none), and both reaching host a."""
        if self.netem:
            for host in ("b", "c"):
                for ns, dev in ((self.ns[host], "eth0"), (self.ns["sw"], f"p{host}")):
                    self.cmd(self.tc, "-n", ns, "qdisc", "del", "dev", dev, "root", check=False)
                    if ms:
                        self.cmd(self.tc, "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay", f"{ms}ms")
        else:
            self.stop_wires()
            for host in ("b", "c"):
                self.wires.append(wire := subprocess.Popen(
                    [sys.executable, "-c", WIRE, str(ms), self.ns[host], "eth0", self.ns["sw"], f"p{host}"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
                assert wire.stdout is not None and wire.stdout.readline().strip() == "ready", wire.stderr
        deadline = time.monotonic() + 20
        for host in ("b", "c"):  # a TAP's carrier comes up when the delay line opens it
            knock = self.argv(host, sys.executable, "-c", KNOCK, ADDRESSES["a"])
            while "refused" not in (probe := subprocess.run(knock, capture_output=True, text=True, timeout=30)).stderr:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"host {host} cannot reach host a: {probe.stderr[-300:]}")
                time.sleep(0.2)

    def argv(self, host: str, *argv: str) -> list[str]:
        """`argv` on `host`: its network namespace, its hostname, and the test-only allowed list."""
        script = 'hostname "$1" && mount --bind "$2" "$3" && shift 3 && exec "$@"'
        return ["unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", script, "sh",
                f"host-{host}", str(self.targets), str(ROOT / "config" / "targets.yaml"),
                self.ip, "netns", "exec", self.ns[host], *argv]

    def start(self, host: str, *argv: str, log: Path | None, env: dict[str, str]) -> subprocess.Popen[Any]:
        """A process on `host` in a session of its own (so the finalizer can end it and its children)."""
        out = log.open("ab") if log else subprocess.PIPE
        proc = subprocess.Popen(self.argv(host, *argv), stdout=out, stderr=subprocess.STDOUT, text=log is None,
                                stdin=subprocess.DEVNULL, cwd=ROOT, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def cut(self, host: str) -> None:
        """`host`'s cable pulled: its link set down."""
        self.cmd(self.ip, "-n", self.ns[host], "link", "set", "eth0", "down")

    @staticmethod
    def end(proc: subprocess.Popen[Any]) -> None:
        """Stop one of our processes and its children (its session: SIGTERM, then SIGKILL)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                return
            try:
                os.killpg(proc.pid, sig)
                proc.wait(10)
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def stop_wires(self) -> None:
        for wire in self.wires:
            self.end(wire)
        self.wires = []

    def teardown(self) -> None:
        """Every process we started, then every namespace (their interfaces go with them)."""
        for proc in self.procs:
            self.end(proc)
        self.stop_wires()
        for ns in self.ns.values():
            self.cmd(self.ip, "netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    machines = Hosts(tmp_path_factory.mktemp("hosts"))
    try:
        machines.build()
        yield machines
    finally:
        machines.teardown()


class Run:
    """One run across the hosts, and what it left: its stage's summary, its ledger, its workers.jsonl."""

    def __init__(self, run_dir: Path, db: Path, code: int, output: str, cut_at: float | None) -> None:
        self.run_dir, self.db, self.code, self.output, self.cut_at = run_dir, db, code, output, cut_at
        self.stage: dict[str, Any] = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["stages"][0]
        self.ledger = list(read_events(run_dir / "ledger" / f"{STAGE}.jsonl"))
        lines = (run_dir / "stages" / STAGE / "workers.jsonl").read_text(encoding="utf-8").splitlines()
        self.workers = [json.loads(line) for line in lines]

    def portal_dossiers(self) -> dict[int, str]:
        """The portal's own database: dossier id → the citizen's id number."""
        with sqlite3.connect(self.db) as db:
            return dict(db.execute("SELECT d.id, c.id_number FROM dossiers d JOIN citizens c ON c.id = d.citizen_id"))

    def cheap(self) -> tuple[float, float, int]:
        """(minimum, median, count) of `CHEAP`'s latency in ms over the stage, merged from every worker."""
        log = read_latency(self.run_dir / "stages" / STAGE / "latency.jsonl")
        t = tally(r for r in log.rows if r["name"] == CHEAP)
        assert t.count and not t.failures, (t.count, t.failures)
        return t.histogram.get_min_value() / 1000, t.percentile_ms(50) or 0.0, t.count


def _run(hosts: Hosts, name: str, *, delay_ms: float, cut: str | None = None) -> Run:
    """The plan across the hosts: portal and master on a, `rehearse worker` on b and c; `cut` pulled mid-stage."""
    (base := hosts.workdir / name).mkdir()
    plan, reports, db = base / "hosts.yaml", base / "reports", base / "portal.sqlite"
    plan.write_text(PLAN, encoding="utf-8")
    env = {**os.environ, "REHEARSAL_ADMIN_TOKEN": secrets.token_hex(16), "PYTHONPATH": str(ROOT)}
    hosts.set_delay(delay_ms)
    portal = hosts.start("a", sys.executable, "-m", "rehearsal.portal", "--host", ADDRESSES["a"], "--port", "8000",
                         "--allow-remote", "--db", str(db), "--time-scale", "120", "--officers-per-unit", "2",
                         log=base / "portal.log", env=env)
    workers = [hosts.start(h, sys.executable, "-m", "rehearsal.cli", "worker", str(plan), "--master", MASTER,
                           log=base / f"worker-{h}.log", env=env) for h in ("b", "c")]
    run = hosts.start("a", sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--confirm-target",
                      ADDRESSES["a"], "--remote-workers", "2", "--master-bind", MASTER, "--reports-dir", str(reports),
                      log=None, env=env)
    cut_at = None
    try:
        if cut:
            wait_for_filing(reports, STAGE, 40, run, timeout=60)  # a few seconds into the filing window
            cut_at = time.time()
            hosts.cut(cut)
        out, _ = run.communicate(timeout=150)
    finally:
        for proc in (*workers, portal):
            hosts.end(proc)
    return Run(next(reports.iterdir()), db, run.returncode, out, cut_at)


@pytest.fixture(scope="module")
def plain(hosts: Hosts) -> Run:
    """The hosts without delay: the baseline."""
    return _run(hosts, "plain", delay_ms=0.0)


@pytest.fixture(scope="module")
def delayed_and_cut(hosts: Hosts, plain: Run) -> Run:
    """20 ms each way on the load hosts' links, and host b's link set down once filing is under way."""
    return _run(hosts, "delayed", delay_ms=DELAY_MS, cut="b")


def test_the_ledger_is_the_portals_database_across_hosts(plain: Run) -> None:
    assert plain.code == 0, plain.output
    stage = plain.stage
    filed = {e["id"] for e in plain.ledger if e["kind"] == "submitted"}
    on_portal = plain.portal_dossiers()
    print(f"no delay: {len(filed)} dossiers in the ledger, {len(on_portal)} in the portal's database")
    assert filed == set(on_portal) and stage["dossiers"]["submitted"] == len(filed) > 0
    assert stage["dossiers"]["lost"] == 0 and stage["dossiers"]["duplicated"] == 0
    assert stage["workers"] == {"peak": 2, "lost": [], "first_lost_at": None}
    # The master saw both hosts' workers join (from their own hosts) and none go.
    assert sorted((line["event"], line["worker"].split("_")[0]) for line in plain.workers) == [
        ("joined", "host-b"), ("joined", "host-c")]


def test_a_host_cut_off_is_noticed_and_its_users_move(delayed_and_cut: Run) -> None:
    run = delayed_and_cut
    assert run.code == 0 and run.cut_at is not None, run.output  # host c carried the stage to its end
    missing = [line for line in run.workers if line["event"] == "missing"]
    assert len(missing) == 1 and missing[0]["worker"].startswith("host-b_"), run.workers
    line = missing[0]
    # Noticed within Locust's heartbeat liveness (3 missed heartbeats of 1 s) and a look or two.
    assert 2.0 <= line["t"] - run.cut_at <= 8.0, (line, run.cut_at)
    # Host b held users; the master handed them to host c: the live workers are back where they were.
    assert line["users_worker"] > 0 and line["users_after"] == line["users_before"], line
    assert line["t_settled"] - line["t"] < 10.0, line
    lost = run.stage["workers"]  # what summary.json says
    assert lost["lost"] == [line["worker"]] and lost["peak"] == 2 and abs(lost["first_lost_at"] - line["t"]) <= 3


def test_no_dossier_is_lost_when_a_host_is_cut_off(delayed_and_cut: Run) -> None:
    run = delayed_and_cut
    assert run.cut_at is not None
    stage, ledger = run.stage, run.ledger
    filed = {e["id"]: e["citizen"] for e in ledger if e["kind"] == "submitted"}
    on_portal = run.portal_dossiers()
    assert stage["dossiers"]["lost"] == 0 and set(filed) <= set(on_portal)
    # A made-up id number carries its worker's rank (digits 4-5: locustfiles.citizens.citizen_id).
    rank = {c: int(c[3:5]) for c in on_portal.values()}
    after_cut = {rank[e["citizen"]] for e in ledger if e["kind"] == "submitted" and e["t"] > run.cut_at + 1}
    assert len(after_cut) == 1, "after the cut only host c's citizens file"
    (rank_c,) = after_cut
    # Dossiers the portal has and the ledger lacks: host b's, filed before the cut, their answer or event
    # still on the cut wire. Nothing else.
    unledgered = {i: c for i, c in on_portal.items() if i not in filed}
    print(f"20 ms, host b cut: {len(filed)} dossiers in the ledger, {len(on_portal)} in the portal's database "
          f"({len(unledgered)} of host b's in flight at the cut)")
    assert all(rank[c] != rank_c for c in unledgered.values()), unledgered
    # Dossiers kept coming after the loss: host c took host b's users.
    assert any(e["t"] > run.cut_at + 4 for e in ledger if e["kind"] == "submitted")


def test_latency_is_the_baselines_plus_the_links_delay(plain: Run, delayed_and_cut: Run) -> None:
    """One round trip of 2 × 20 ms per request (a connection is kept open), and nothing else."""
    assert delayed_and_cut.cut_at is not None
    low0, p50_0, n0 = plain.cheap()
    # What host b measured after the cut never reached the master: every figure here crossed a delayed link.
    low1, p50_1, n1 = delayed_and_cut.cheap()
    added = 2 * DELAY_MS
    print(f"{CHEAP}: no delay min {low0:.1f} p50 {p50_0:.1f} ms ({n0}); "
          f"20 ms each way min {low1:.1f} p50 {p50_1:.1f} ms ({n1})")
    # The minimum: a busy machine only adds to it, so its difference is the link's, tightly.
    assert added - 1.0 <= low1 - low0 <= added + 5.0, (low0, low1)
    # The median: the same, with room for a busy machine's noise.
    assert added - 5.0 <= p50_1 - p50_0 <= added + 25.0, (p50_0, p50_1)


def test_the_kubernetes_example_is_what_the_harness_reads(tmp_path: Path) -> None:
    """examples/kubernetes/: manifests Kubernetes can read, a scenario and a targets file the harness
    accepts, command lines `rehearse` parses, and a master waiting for as many workers as are deployed."""
    docs = [doc for path in sorted((ROOT / "examples" / "kubernetes").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert all(doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name") for doc in docs)
    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    for name, key in (("rehearsal-scenario", "night.yaml"), ("rehearsal-targets", "targets.yaml")):
        (tmp_path / key).write_text(by_kind[("ConfigMap", name)]["data"][key], encoding="utf-8")
    plan = load_plan(tmp_path / "night.yaml")
    master, worker = (build_parser().parse_args(by_kind[kind]["spec"]["template"]["spec"]["containers"][0]["args"])
                      for kind in (("Job", "locust-master"), ("Deployment", "locust-worker")))
    target = resolve_target(master.target or plan.target, confirmed=master.confirm_target,
                            path=tmp_path / "targets.yaml")
    assert target.url and not target.embedded  # workers in pods need a target they can all reach
    port = by_kind[("Service", "locust-master")]["spec"]["ports"][0]["port"]
    assert worker.master == f"locust-master:{port}" and master.master_bind == f"0.0.0.0:{port}"
    replicas = by_kind[("Deployment", "locust-worker")]["spec"]["replicas"]
    assert master.remote_workers == replicas * worker.processes and master.workers == 0
