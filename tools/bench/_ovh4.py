#!/usr/bin/env python3
"""Benchmark: what our user machinery costs the load generator, against bare Locust.

Two Locust users send ``GET /api/health`` to one reference portal, as fast as
they can (no wait), in alternating rounds (A, B, A, B, ...), one Locust
process per round:

A. **harness**: a `locustfiles.common.PortalUser` (a signed-in citizen on the
   national portal's adapter, the token in a header) calling
   ``self.portal.request(...)``, with every listener of our locustfile active:
   the telemetry (ledger, time series, session counts, ``/api/stats`` polled
   every 2 s), the HDR latency recorder, the timeline and the gate watch,
   writing a run directory as in ``rehearse run``.
B. **bare**: ``locust.FastHttpUser`` with ``self.client.get("/api/health")``
   (`benchlib.BARE_USER`). Its median is also the machine's calibration.
C. with ``--baseline-tree DIR``: the same harness user run from another
   checkout (e.g. the last commit: ``git archive HEAD | tar -x -C DIR``), in
   the same rounds (A, B, C, A, B, C, ...): before and after a change,
   side by side on the same machine at the same time.

Each round is measured over its middle (after the users have started,
before they stop): requests counted by the portal itself, and CPU seconds of
the Locust process (psutil). The figure is **requests per CPU-second of the
generator** (= requests per second per core when the generator is
saturated), per round; each pair's own ratio A/B and their median, the
figure (target >= 0.9); and the ratio of each kind's median beside it. Rounds alternate so that whatever
else runs on this shared machine falls on all kinds; each round says how busy
the machine was. ``--profile`` samples one harness round with py-spy.
``--together`` runs the kinds of each round at the same time instead, each
against a portal of its own (which portal, turn about from round to round),
measured over the same seconds: on this shared VM one-at-a-time pairs
spread ±25 % within one run, and whatever the machine does then falls on
every kind alike. Writes reports/bench/overhead.json.

    python3 tools/bench/overhead.py [--rounds 3] [--seconds 20] [--users 20] [--profile] [--baseline-tree DIR]
                                    [--together]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (BARE_USER, BENCH_DIR, ROOT, LocustRound, locust_round, locust_rounds_together,  # noqa: E402
                      machine, publish, start_portal, stop, top_functions)

TARGET = 0.9

HARNESS = '''
import locust  # noqa: F401  (first: gevent patches the standard library)

from locust import events, task

import locustfiles.locustfile  # noqa: F401  (our init hooks: telemetry, HDR latency, timeline, gate watch)
from locustfiles.common import PortalUser


class HarnessUser(PortalUser):
    tag = "citizen"
    role = "citizen"

    def on_start(self):
        # As a citizen starts: placed on the national portal (here the one --host portal), signed in by VNeID.
        self.place(self.ctx.systems.home("citizen"))
        self.portal.sign_in(f"079{self.ctx.next_identity('citizen'):09d}")

    @task
    def health(self):
        self.portal.request("GET", "/api/health", "/api/health")


@events.init.add_listener
def _context(environment, **_):
    HarnessUser.ctx = environment.rehearsal
'''

PLAN = """name: overhead
time_scale: 1
stages:
  - name: overhead
    units: {codes: [25747]}
    duration: 1h
    citizens: {users: 1, spawn_rate: 1, think_time: [1s, 2s]}
    officers: {per_unit: 0}
"""


def one_round(kind: str, files: dict[str, Path], url: str, work: Path, n: int, args: argparse.Namespace,
              profile_out: Path | None) -> dict[str, Any]:
    extra = ["--plan", str(files["plan"]), "--run-dir", str(work / f"run-{n}")] if kind != "bare" else []
    cwd = Path(args.baseline_tree) if kind == "baseline" else ROOT
    r = locust_round(files["bare" if kind == "bare" else "harness"], url, work, f"round-{n}", users=args.users,
                     seconds=args.seconds, extra=extra, cwd=cwd, profile_out=profile_out)
    return {"kind": kind, "round": n, **r}


def rounds_together(kinds: tuple[str, ...], files: dict[str, Path], urls: list[str], work: Path, n: int,
                    args: argparse.Namespace) -> list[dict[str, Any]]:
    """One round of every kind at the same time, each against a portal of its own (which one, turn about)."""
    started = []
    for k, kind in enumerate(kinds):
        extra = ["--plan", str(files["plan"]), "--run-dir", str(work / f"run-{n}-{kind}")] if not kind.startswith("bare") else []
        url = urls[(k + n) % len(urls)]
        started.append(LocustRound(files[kind], url, work, f"round-{n}-{kind}",
                                   users=args.users, seconds=args.seconds, extra=extra,
                                   cwd=Path(args.baseline_tree) if kind == "baseline" else ROOT))
    figures = locust_rounds_together(started, args.seconds)
    return [{"kind": kind, "round": n, "portal": (k + n) % len(urls), **f} for k, (kind, f) in
            enumerate(zip(kinds, figures))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="sets of rounds (A, B[, C])")
    ap.add_argument("--seconds", type=int, default=20, help="length of each round")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="py-spy the first harness round")
    ap.add_argument("--baseline-tree", default="", metavar="DIR",
                    help="also run the harness user from this checkout (side C), interleaved")
    ap.add_argument("--together", action="store_true",
                    help="run the kinds of a round at the same time, each against a portal of its own (turn about), "
                         "so that the machine's moods fall on all of them alike")
    ap.add_argument("--out", default=str(BENCH_DIR / "overhead.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    files = {"harness": work / "harness_user.py", "bare": work / "bare_user.py", "plan": work / "overhead.yaml"}
    files["harness"].write_text(HARNESS)
    files["direct"] = work / "direct_user.py"
    files["direct"].write_text(HARNESS.replace('self.portal.request("GET", "/api/health", "/api/health")', 'self.client.get("/api/health")'))
    files["nowire"] = work / "nowire_user.py"
    files["nowire"].write_text(HARNESS.replace('import locustfiles.locustfile', 'import locustfiles.wire as _w; _w.install = lambda: False\nimport locustfiles.locustfile'))
    files["bare"].write_text(BARE_USER)
    files["plan"].write_text(PLAN)
    import os
    kinds = tuple(os.environ.get("KINDS", "harness,bare,bare2").split(","))
    files["bare2"] = work / "bare2_user.py"
    files["bare2"].write_text(BARE_USER)
    portals = [start_portal(work / f"portal-{k}") for k in range(len(kinds) if args.together else 1)]
    url = portals[0][1]
    rounds: list[dict[str, Any]] = []
    profile_out = Path(args.out).with_suffix(".profile.txt") if args.profile and not args.together else None
    try:
        for i in range(args.rounds):
            if args.together:
                for r in rounds_together(kinds, files, [u for _, u in portals], work, i, args):
                    print(r, file=sys.stderr, flush=True)
                    rounds.append(r)
                continue
            for kind in kinds:
                r = one_round(kind, files, url, work, len(rounds), args,
                              profile_out if kind == "harness" and i == 0 else None)
                print(r, file=sys.stderr, flush=True)
                rounds.append(r)
    finally:
        for proc, _ in portals:
            stop(proc)
    med = {k: statistics.median(r["requests_per_cpu_s"] for r in rounds if r["kind"] == k) for k in kinds}
    sets = [rounds[i:i + len(kinds)] for i in range(0, len(rounds), len(kinds))]
    pairs = [round(s[0]["requests_per_cpu_s"] / s[1]["requests_per_cpu_s"], 3) for s in sets]
    figures: dict[str, Any] = {
        "machine": machine(),
        "calibration": {"bare_fasthttpuser_requests_per_cpu_s": round(med["bare"], 1), "endpoint": "GET /api/health",
                        "machine_busy_percent": [r["machine_busy_percent"] for r in rounds],
                        "load_avg_1m": [r["load_avg_1m"] for r in rounds]},
        "users": args.users, "round_s": args.seconds, "endpoint": "GET /api/health", "rounds": rounds,
        "harness_requests_per_cpu_s_median": round(med["harness"], 1),
        "bare_requests_per_cpu_s_median": round(med["bare"], 1),
        # The headline: the median of each pair's own ratio (the two rounds of a pair are the closest in
        # time, or the same seconds with --together); the ratio of the two medians is kept beside it.
        "ratio_harness_to_bare": round(statistics.median(pairs), 3),
        "ratio_of_medians": round(med["harness"] / med["bare"], 3),
        "ratio_per_pair": pairs,
        "target_ratio": TARGET,
        "together": args.together,
        "note": "requests counted by the portal; CPU of the Locust process only (psutil); "
                + ("the kinds of a round at the same time, each against its own portal, turn about; " if args.together
                   else "one round at a time; ")
                + "the machine is shared: machine_busy_percent is all cores, ours included",
    }
    if args.baseline_tree:
        figures["baseline_tree"] = args.baseline_tree
        figures["baseline_requests_per_cpu_s_median"] = round(med["baseline"], 1)
        figures["ratio_baseline_to_bare"] = round(med["baseline"] / med["bare"], 3)
        figures["ratio_baseline_per_set"] = [round(s[2]["requests_per_cpu_s"] / s[1]["requests_per_cpu_s"], 3)
                                             for s in sets if len(s) == 3]
    if profile_out and profile_out.exists():
        figures["harness_profile"] = top_functions(profile_out, 20)
    figures["passed"] = figures["ratio_harness_to_bare"] >= TARGET
    print(f"calibration: a bare FastHttpUser made {figures['calibration']['bare_fasthttpuser_requests_per_cpu_s']} "
          f"requests per CPU-second here; ours {figures['ratio_harness_to_bare']}x that", file=sys.stderr)
    publish(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
