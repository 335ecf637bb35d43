"""Results of a two-system stage: reconciliation three ways, sync lag and backlog, the summary, gates and the report.

A real-systems fixture, not a mock: a national portal and the hcmc
provincial system (its front door, its link agent) on loopback; a few
dossiers driven through them with plain HTTP as citizens and officers, one
of them moved while the link agent was killed (unsynced), one filed on the
national portal while it was down (not delivered). The run directory is
written the way the runner writes it (``systems.json``, the ledger with
``code`` and ``system`` on every event, time-series rows polled from the
systems' own ``/api/stats``), then read back by `rehearsal.results` and the
report, which is rendered to PNG with headless Chromium for a person to look
at (``screenshots/`` in the run directory).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ensure_system_package
from test_dashboards import dom, page_width, screenshot
from twosystems import U1, Systems, poll, start_systems

from rehearsal.errors import PortalError
from rehearsal.plan import load_plan
from rehearsal.report.page import build_report
from rehearsal.results.national import NationalAccount, NationalReader
from rehearsal.results.rejudge import judge_run
from rehearsal.results.summary import stage_summary, write_summary
from rehearsal.results.sync import SYNC_FILE, link_restarts, read_sync_steps
from rehearsal.results.two_systems import reconcile_two_systems

PLAN = """\
name: two-systems-results
target: reference
time_scale: 60
stages:
  - name: s
    units: {codes: [26506]}
    duration: 10m
    grace: 5m
    citizens: {users: 4, spawn_rate: 4, think_time: [30s, 1m], follow_interval: 1m}
    officers: {think_time: [10s, 30s], poll_interval: 30s}
    gates:
      - unsynced_dossiers == 0
      - not_delivered_dossiers == 0
      - lost_dossiers == 0
      - sync_lag_p95_s <= 60s
      - sync_lag_max_s over every 2m <= 60s
      - sync_backlog_max over every 1m <= 1000
      - completion_rate_national >= 0%
      - unsynced_dossiers{unit=26506} <= 0
"""
LOST = "G99.LOST.1"


class Run:
    """A run directory being written the way the runner writes one."""

    def __init__(self, root: Path, systems: Systems) -> None:
        self.dir = root
        self.systems = systems
        (root / "ledger").mkdir(parents=True)
        self.stage_dir = root / "stages" / "s"
        self.stage_dir.mkdir(parents=True)
        self.events: list[dict[str, Any]] = []

    def event(self, kind: str, **fields: Any) -> None:
        self.events.append({"t": time.time(), "stage": "s", "kind": kind, **fields})

    def sample(self) -> None:
        """One time-series row from the systems' own /api/stats (as the runner's 2-second poll)."""
        _, nat = self.systems.national.call("GET", "/api/stats")
        _, prov = self.systems.provincial.call("GET", "/api/stats")
        link = prov["link"]
        row = {"t": time.time(), "sessions_harness": 3,
               "systems": {"national": {"sessions": nat["sessions_active"], "up": True},
                           "hcmc": {"sessions": prov["sessions_active"], "up": True}},
               "sessions_portal": nat["sessions_active"] + prov["sessions_active"],
               "sync_backlog": link["outbox_pending"], "sync_oldest_s": link["outbox_oldest_s"],
               "feed_behind": link["feed_behind"], "link_alive": link["agent_alive"]}
        with (self.stage_dir / "timeseries.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        (self.dir / "ledger" / "s.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n"
                                                             for e in self.events), encoding="utf-8")


def _file(run: Run, citizen: str, n: int) -> dict[str, Any]:
    d = run.systems.file_on_national(citizen)
    run.event("submitted", id=d["id"], code=d["code"], unit=U1, procedure="DD-03", client_ref=f"r{n}",
              citizen=f"c{n}", system="national")
    return d


def _step(run: Run, officer: str, code: str, action: str, kind: str, body: dict | None = None) -> None:
    dossier_id = run.systems.on_provincial(code)["id"]
    run.systems.step(officer, dossier_id, action, body)
    # The officer's event carries the provincial id; one of them without its code, as an old client would write.
    run.event(kind, id=dossier_id, system="hcmc", **({} if action == "process" else {"code": code}))
    run.sample()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("results2")
    (tmp / "plan.yaml").write_text(PLAN, encoding="utf-8")
    stage = load_plan(tmp / "plan.yaml").stages[0]
    systems = start_systems(tmp / "systems")
    try:
        r = Run(tmp / "run", systems)
        (r.dir / "scenario.yaml").write_text(PLAN, encoding="utf-8")
        (r.dir / "systems.json").write_text(json.dumps({
            "national": {"system": "national", "url": systems.national.base_url},
            "hcmc": {"system": "provincial", "url": systems.provincial.base_url,
                     "front_door_url": systems.door.base_url}}), encoding="utf-8")
        r.sample()
        citizen = systems.national.citizen("079100000001")
        officer = systems.provincial.officer(U1)
        done, moved = _file(r, citizen, 1), _file(r, citizen, 2)
        for d in (done, moved):
            poll("filed dossier on provincial", lambda d=d: systems.on_provincial(d["code"]))
        for action, kind, body in (("receive", "received", None), ("process", "processing", None),
                                   ("decide", "decided", {"decision": "approved"}), ("return", "returned", None)):
            _step(r, officer, done["code"], action, kind, body)
        _step(r, officer, moved["code"], "receive", "received")
        for d in (done, moved):
            poll("synced", lambda d=d: systems.synced(d["code"]), timeout=90)
        r.sample()
        # The link agent killed: a step taken now stays on the provincial side, a dossier filed now never arrives.
        unsynced = _file(r, citizen, 3)
        poll("third dossier on provincial", lambda: systems.on_provincial(unsynced["code"]))
        poll("synced", lambda: systems.synced(unsynced["code"]), timeout=90)
        status, answer = systems.provincial.call("POST", "/api/admin/link", {"action": "kill"})
        assert status == 200, answer
        poll("link down", lambda: not systems.link()["agent_alive"])
        _step(r, officer, unsynced["code"], "receive", "received")
        undelivered = _file(r, citizen, 4)
        r.event("submitted", id=None, code=LOST, unit=U1, procedure="DD-03", client_ref="r5", citizen="c5",
                system="national")
        for _ in range(3):
            r.sample()
            time.sleep(0.3)
        r.close()
        rec = reconcile_two_systems(r.dir, "s", env={})
        entry = stage_summary(stage, r.stage_dir, rec, finished=True, time_scale=60.0)
        summary = {"scenario": "two-systems-results", "run_id": r.dir.name, "started_at": "2025-06-18T13:00:00Z",
                   "finished_at": "2025-06-18T13:15:00Z", "time_scale": 60.0, "target": "reference",
                   "verdict": entry["verdict"], "stages": [entry], "harness_version": "test"}
        write_summary(r.dir, summary)
        yield {"dir": r.dir, "rec": rec, "entry": entry, "systems": systems, "tmp": tmp,
               "codes": {"done": done["code"], "moved": moved["code"], "unsynced": unsynced["code"],
                         "undelivered": undelivered["code"]}}
    finally:
        systems.stop()


def test_reconciliation_three_ways(run: dict[str, Any]) -> None:
    rec, codes = run["rec"], run["codes"]
    assert rec.two_systems and rec.national_error is None
    assert rec.submitted == 5
    assert rec.lost_codes == [LOST]
    assert rec.not_delivered == [codes["undelivered"]]
    assert rec.unsynced == [codes["unsynced"]]
    assert rec.complete == 1 and rec.complete_national == 1  # officers and citizens agree on the one returned
    assert rec.duplicated == 0 and rec.inconsistent == []
    unit = rec.units[U1]
    assert (unit.unsynced, unit.not_delivered, unit.unsynced_codes) == (1, 1, [codes["unsynced"]])


def test_sync_lag_from_both_clocks(run: dict[str, Any]) -> None:
    rec = run["rec"]
    steps = read_sync_steps(run["dir"] / "stages" / "s")
    assert steps is not None and (run["dir"] / "stages" / "s" / SYNC_FILE).exists()
    # Four officer steps of the first dossier and one of the second (the filings were pulled from national:
    # not the outbox's); the third dossier's step was taken with the link down and is not on national.
    assert len(steps) == 5 and rec.sync.receipt_times
    assert (rec.sync.pushed, rec.sync.missing) == (6, 1)
    assert all(-1.0 <= s["lag_s"] < 30 for s in steps), steps  # same machine: clocks agree to the ms


def test_summary_keys_as_the_contract(run: dict[str, Any]) -> None:
    e, codes = run["entry"], run["codes"]
    d = e["dossiers"]
    assert (d["lost"], d["not_delivered"], d["unsynced"]) == (1, 1, 1)
    assert e["unsynced_codes"] == [codes["unsynced"]] and e["not_delivered_codes"] == [codes["undelivered"]]
    assert e["completion_rate"] == pytest.approx(1 / 5) and e["completion_rate_national"] == pytest.approx(1 / 5)
    assert set(e["sessions"]["by_system"]) == {"national", "hcmc"}
    sync = e["sync"]
    assert sync["unknown"] is False and sync["lag_s"]["count"] == 5
    assert sync["lag_s"]["p50"] <= sync["lag_s"]["p95"] <= sync["lag_s"]["max"]
    assert sync["series"] and {"t", "p50", "p95", "max", "backlog"} <= set(sync["series"][0])
    assert sync["backlog_max"] >= 1 and sync["backlog_end"] >= 1  # the killed link left its step waiting
    assert sync["link_restarts"] == 0
    unit = e["unit_results"][str(U1)]
    assert (unit["unsynced"], unit["not_delivered"]) == (1, 1)


def test_gates_name_the_dossiers(run: dict[str, Any]) -> None:
    e, codes = run["entry"], run["codes"]
    gates = {g["expr"]: g for g in e["gates"]}
    assert e["verdict"] == "NO-GO"
    unsynced = gates["unsynced_dossiers == 0"]
    assert unsynced["status"] == "failed" and codes["unsynced"] in unsynced["detail"]
    assert "1 dossier: " in unsynced["detail"]
    assert codes["unsynced"] in gates["unsynced_dossiers{unit=26506} <= 0"]["detail"]
    assert codes["undelivered"] in gates["not_delivered_dossiers == 0"]["detail"]
    for expr in ("sync_lag_p95_s <= 60s", "sync_lag_max_s over every 2m <= 60s", "sync_backlog_max over every 1m <= 1000",
                 "completion_rate_national >= 0%"):
        assert gates[expr]["status"] == "passed", gates[expr]


def test_rejudge_reads_the_same(run: dict[str, Any]) -> None:
    summary = json.loads((run["dir"] / "summary.json").read_text(encoding="utf-8"))
    again = judge_run(run["dir"], summary, load_plan(run["dir"] / "scenario.yaml"))
    assert [(g["expr"], g["status"], g["observed"]) for g in again["stages"][0]["gates"]] == \
        [(g["expr"], g["status"], g["observed"]) for g in summary["stages"][0]["gates"]]


def test_national_reader_batches_and_refuses_a_wrong_password(run: dict[str, Any]) -> None:
    systems, codes = run["systems"], run["codes"]
    reader = NationalReader(systems.national.base_url, NationalAccount())
    wanted = [f"X{i:04d}" for i in range(150)] + [codes["done"]]
    found = reader.look_up(wanted)
    assert list(found) == [codes["done"]] and reader.calls == 1 + 2  # sign-in, then 100 + 51 codes
    wrong = NationalAccount.from_entry({"integration": {"password_env": "RESULTS_TEST_PW"}},
                                       {"RESULTS_TEST_PW": "not-it"})
    with pytest.raises(PortalError, match=r"\$RESULTS_TEST_PW"):
        NationalReader(systems.national.base_url, wrong).look_up([codes["done"]])


def test_report_shows_the_sync_panel(run: dict[str, Any]) -> None:
    ensure_system_package("chromium", "chromium")
    shots = run["dir"] / "screenshots"
    for lang in ("vi", "en"):
        page = build_report(run["dir"], lang).read_text(encoding="utf-8")
        assert "data-kpi='sync'" in page and "data-kpi='completion_national'" in page
        assert run["codes"]["unsynced"] in page and run["codes"]["undelivered"] in page
        assert "data-kpi='sessions_by_system'" in page
    report = run["dir"] / "index.en.html"
    for width in (1366, 390):
        screenshot(report.as_uri(), shots / f"report-two-systems-{width}.png", width, 4200)
        assert page_width(report, width, run["tmp"] / ".chromium") <= width


def test_old_run_without_sync_says_unknown(run: dict[str, Any], tmp_path: Path) -> None:
    """A run directory from before the two systems: no systems.json, no sync keys, no sync_steps.jsonl."""
    old = tmp_path / "old"
    (old / "stages" / "s").mkdir(parents=True)
    (old / "scenario.yaml").write_text(PLAN, encoding="utf-8")
    entry = {k: v for k, v in run["entry"].items()
             if k not in ("sync", "unsynced_codes", "not_delivered_codes", "completion_rate_national", "lost_codes")}
    entry["dossiers"] = {k: v for k, v in entry["dossiers"].items()
                         if k not in ("unsynced", "not_delivered", "complete_national", "withdrawn_national")}
    entry["sessions"] = {"peak_harness": 3, "peak_portal": 2}
    entry["unit_results"] = {c: {k: v for k, v in u.items() if "national" not in k and "unsynced" not in k
                                 and "not_delivered" not in k} for c, u in entry["unit_results"].items()}
    summary = {"scenario": "old", "run_id": "old", "started_at": "x", "finished_at": "y", "time_scale": 60.0,
               "target": "reference", "verdict": "GO", "stages": [entry]}
    write_summary(old, summary)
    again = judge_run(old, summary, load_plan(old / "scenario.yaml"))
    gates = {g["expr"]: g for g in again["stages"][0]["gates"]}
    assert gates["unsynced_dossiers == 0"]["observed"] is None
    assert "not reconciled with the national portal" in gates["unsynced_dossiers == 0"]["detail"]
    assert "unknown" in gates["sync_lag_p95_s <= 60s"]["detail"]
    page = build_report(old, "en").read_text(encoding="utf-8")
    assert "data-kpi='sync'" in page and "unknown" in page


def test_link_restarts_count_returns_after_being_up_not_a_slow_start() -> None:
    """Without the supervisor's counter, restarts are read from the samples' link_alive: back up after being up."""
    rows = lambda *alive: [{"t": float(k), "link_alive": a} for k, a in enumerate(alive)]  # noqa: E731
    assert link_restarts(rows(False, False, True, True)) == 0  # still starting at the first samples (a busy machine)
    assert link_restarts(rows(True, False, True, False, True)) == 2
    assert link_restarts(rows(False, True, False)) == 0  # down at the end: not (yet) restarted
    assert link_restarts(rows(False, False)) == 0 and link_restarts([{"t": 1.0}]) is None
    assert link_restarts([{"t": 1.0, "link_restarts": 3}, {"t": 2.0, "link_restarts": 5}]) == 2


def test_live_view_shows_the_link(run: dict[str, Any], tmp_path: Path) -> None:
    """The live view: the link's backlog while a stage runs, unsynced and lag once a stage is reconciled."""
    import threading

    from rehearsal.report.live import LiveView, make_server

    final = LiveView(run["dir"]).snapshot()["current"]["sync"]
    assert (final["unsynced"], final["not_delivered"], final["unknown"]) == (1, 1, False)
    assert final["lag_p95"] == run["entry"]["sync"]["lag_s"]["p95"]
    live_dir = tmp_path / "live"
    (live_dir / "stages" / "s2").mkdir(parents=True)
    summary = json.loads((run["dir"] / "summary.json").read_text(encoding="utf-8"))
    write_summary(live_dir, {**summary, "finished_at": None, "verdict": "INCOMPLETE"})
    now = time.time()
    rows = [{"t": now + 2 * k, "sessions_harness": 5, "sessions_portal": 4, "sync_backlog": b, "sync_oldest_s": 3.5,
             "link_alive": k < 2} for k, b in enumerate((0, 4, 9, 7))]
    (live_dir / "stages" / "s2" / "timeseries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    current = LiveView(live_dir).snapshot()["current"]
    assert current["live"] and current["sync"] == {"live": True, "backlog": 7, "backlog_peak": 9, "oldest_s": 3.5,
                                                   "link_alive": False}
    server = make_server(live_dir, port=0, lang="en")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        shot = screenshot(f"http://127.0.0.1:{server.server_address[1]}/", live_dir / "live-1366.png", 1366, 1200)
        assert shot.stat().st_size > 10_000
        page = dom(f"http://127.0.0.1:{server.server_address[1]}/", 1366, live_dir / ".chromium-dom")
        assert "data-kpi=\"sync_backlog\"" in page and "9 · 7" in page, page[-3000:]
    finally:
        server.shutdown()


def test_stage_comparison_has_the_sync_columns(run: dict[str, Any], tmp_path: Path) -> None:
    """A plan of several stages: unsynced and sync lag p95 per stage, "–" for a stage that did not measure them."""
    from rehearsal.report.page import render

    e = run["entry"]
    old = {**e, "name": "old", "sync": {"unknown": True}, "dossiers": {k: v for k, v in e["dossiers"].items()
                                                                    if k != "unsynced"}}
    page = render({"scenario": "x", "run_id": "x", "started_at": "a", "finished_at": "b", "time_scale": 60,
                   "target": "reference", "verdict": "NO-GO", "stages": [e, old]}, lang="en")
    table = page.split("<table class='stages'>", 1)[1].split("</table>", 1)[0]
    assert "Unsynced dossiers" in table and "Sync lag p95" in table
    assert f"{e['sync']['lag_s']['p95']:,.2f} s" in table and table.count("<td>–</td>") >= 2
