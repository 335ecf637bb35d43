"""The people and the run on two systems: real short runs of the embedded reference, read from the run directory.

The runner starts the national portal, HCMC's one-stop system (the city's
front door on its second port, its link agent) and, for a cutover from a
former province, that province's system; it writes ``systems.json``; the
citizens and officers reach each system through its adapter
(`locustfiles.clients`); every dossier event carries its code and system;
the time series counts each system's own sessions and the link's backlog;
both systems' databases agree with the ledger. Runs are bounded (a few
units, a few dozen users, 120×) and judged on their files, not only on the
summary.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rehearsal.errors import TargetError
from rehearsal.results.ledger import read_events
from rehearsal.run.systems import SystemEntry, Systems
from rehearsal.run.targets import reach_systems, resolve_target

ROOT = Path(__file__).resolve().parent.parent
HCMC = [26737, 26740, 26743, 26758]
BRVT = [26506, 26536]
LOAD = """\
    citizens: {users: 24, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}
    officers: {per_unit: 2, think_time: [10s, 30s], poll_interval: 30s, supplement_share: 0.2, sign_in_lead: 1m}
"""
DOSSIER_KINDS = {"submitted", "paid", "supplemented", "withdrawal_asked", "seen_complete", "seen_stopped", "received",
                 "processing", "decided", "returned", "transferred", "taken_back", "supplement_requested",
                 "refused_intake", "stopped"}


def _run(tmp: Path, text: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    plan = tmp / "plan.yaml"
    plan.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--reports-dir", str(tmp / "r")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    return proc, sorted((tmp / "r").iterdir())[-1]


def _codes(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT code, status FROM dossiers"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One stage on the national portal and HCMC's platform, with the link agent killed for a while."""
    return _run(tmp_path_factory.mktemp("plain"), f"""\
name: plain
target: reference
time_scale: 120
seed: 4
stages:
  - name: plain
    units: {{codes: {HCMC}}}
    duration: 30m
    grace: 20m
{LOAD}    faults:
      - {{name: link away, kind: link-kill, at: 10m, for: 4m}}
    gates: [lost_dossiers == 0, duplicated_dossiers == 0]
""")


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The city portal closes under load; then a former province's units move onto HCMC's platform."""
    return _run(tmp_path_factory.mktemp("cut"), f"""\
name: cut
target: reference
time_scale: 120
seed: 5
stages:
  - name: city
    units: {{codes: {HCMC}}}
    duration: 40m
    grace: 20m
{LOAD}    cutover: {{at: 20m, from: city, migrate: false, mode: "503", retry_after: 1m}}
    gates: [lost_dossiers == 0, duplicated_dossiers == 0]
  - name: brvt
    units: {{codes: {HCMC[:2] + BRVT}}}
    duration: 40m
    grace: 20m
{LOAD}    cutover: {{at: 20m, from: brvt, units: {{codes: {BRVT}}}, mode: redirect, retry_after: 1m}}
    gates: [lost_dossiers == 0, duplicated_dossiers == 0]
""")


def test_the_runner_starts_both_systems_and_names_them(plain) -> None:
    proc, run_dir = plain
    assert proc.returncode == 0, proc.stdout + proc.stderr
    systems = json.loads((run_dir / "systems.json").read_text())
    assert set(systems) == {"national", "hcmc"}
    assert systems["national"]["system"] == "national" and systems["hcmc"]["system"] == "provincial"
    assert systems["hcmc"]["front_door_url"].startswith("http://127.0.0.1:")
    assert {"national.sqlite", "national.log", "provincial.sqlite", "provincial.log"} <= {
        p.name for p in run_dir.iterdir()}
    cpu = json.loads((run_dir / "cpu.json").read_text())
    assert cpu["national"] > 0 and cpu["provincial"] > 0
    assert any(k.startswith("provincial.child-") for k in cpu)  # the link agent, counted apart


def test_every_dossier_event_has_its_code_and_system(plain) -> None:
    _, run_dir = plain
    events = [e for e in read_events(run_dir / "ledger" / "plain.jsonl") if e["kind"] in DOSSIER_KINDS]
    assert events and all(e.get("code") and e.get("system") for e in events)
    systems = Counter((e["kind"], e["system"]) for e in events)
    assert systems[("submitted", "national")] == sum(1 for e in events if e["kind"] == "submitted")
    assert systems[("returned", "hcmc")] > 0 and not any(s == "national" for (k, s) in systems if k == "returned")


def test_both_databases_agree_with_the_ledger(plain) -> None:
    _, run_dir = plain
    events = list(read_events(run_dir / "ledger" / "plain.jsonl"))
    filed = {e["code"] for e in events if e["kind"] == "submitted"}
    national, provincial = _codes(run_dir / "national.sqlite"), _codes(run_dir / "provincial.sqlite")
    assert filed and filed == set(national) == set(provincial)
    returned = {e["code"] for e in events if e["kind"] == "returned"}
    assert returned and all(provincial[c] == 10 and national[c] == 10 for c in returned)
    ids = {e["id"] for e in events if e["kind"] == "submitted"}
    assert all(10_000_000 <= i < 20_000_000 for i in ids)  # the national portal's own ids: the code is the key


def test_the_time_series_counts_each_systems_sessions_and_the_backlog(plain) -> None:
    _, run_dir = plain
    rows = [json.loads(line) for line in (run_dir / "stages" / "plain" / "timeseries.jsonl").open()]
    busy = [r for r in rows if r["users"] > 0 and r.get("systems")]
    assert busy
    for r in busy:
        assert set(r["systems"]) == {"national", "hcmc", "city"}
        assert r["sessions_portal"] == sum(s["sessions"] for s in r["systems"].values())
        assert all(s["up"] for s in r["systems"].values())
        assert {"sync_backlog", "sync_oldest_s", "feed_behind", "link_alive"} <= set(r)
    assert max(r["systems"]["national"]["sessions"] for r in busy) >= 20  # citizens on the national portal
    assert max(r["systems"]["hcmc"]["sessions"] for r in busy) == 8  # 4 units × 2 officers
    # The link agent was killed for 4 simulated minutes (2 s) and started again; the backlog grew meanwhile.
    alive = [r["link_alive"] for r in busy]
    assert False in alive and alive[-1] is True
    markers = [json.loads(line) for line in (run_dir / "stages" / "plain" / "markers.jsonl").open()]
    assert [(m["kind"], m.get("system")) for m in markers if m.get("fault") == "link-kill"] == [
        ("fault_start", "hcmc"), ("fault_end", "hcmc")]


def test_city_citizens_move_to_the_national_portal_and_their_dossiers_follow(cut) -> None:
    proc, run_dir = cut
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = list(read_events(run_dir / "ledger" / "city.jsonl"))
    record = json.loads((run_dir / "stages" / "city" / "cutover.json").read_text())
    assert record["from"] == "city" and "error" not in record
    closed = record["closed_at"]
    filed = [(e["t"], e["system"], e["code"]) for e in events if e["kind"] == "submitted"]
    assert all(s == "city" for t, s, _ in filed if t < closed - 1)
    assert all(s == "national" for t, s, _ in filed if t > closed + 1)
    assert {s for _, s, _ in filed} == {"city", "national"}
    lost_by = {e["user"] for e in events if e["kind"] == "session_lost"}
    assert lost_by and lost_by == {e["user"] for e in events if e["kind"] == "session_restored"}
    assert {e["system"] for e in events if e["kind"] == "session_restored"} == {"national"}
    # What was filed through the city portal is processed on HCMC's platform and shown on the national portal.
    national, provincial = _codes(run_dir / "national.sqlite"), _codes(run_dir / "provincial.sqlite")
    city_codes = {c for _, s, c in filed if s == "city"}
    assert city_codes <= set(provincial) and city_codes <= set(national)
    assert set(record["codes"]) <= city_codes and record["open_at_close"] == len(record["codes"])
    # The closed front door's sessions are not counted twice once its citizens signed in on the national portal.
    rows = [json.loads(line) for line in (run_dir / "stages" / "city" / "timeseries.jsonl").open()]
    after = [r for r in rows if r["t"] > closed + 3 and r["users"] > 0]
    assert after and all(r["systems"]["city"].get("closed") for r in after)
    assert all(r["sessions_portal"] == r["systems"]["national"]["sessions"] + r["systems"]["hcmc"]["sessions"]
               for r in after)


def test_a_former_provinces_units_move_onto_hcmcs_platform(cut) -> None:
    _, run_dir = cut
    systems = json.loads((run_dir / "systems.json").read_text())
    assert systems["brvt"]["system"] == "provincial" and systems["brvt"]["front_door_url"]
    events = list(read_events(run_dir / "ledger" / "brvt.jsonl"))
    record = json.loads((run_dir / "stages" / "brvt" / "cutover.json").read_text())
    assert record["from"] == "brvt" and record["officers_to"] == "hcmc" and record["units"] == sorted(BRVT)
    filed = {e["code"]: e for e in events if e["kind"] == "submitted"}
    before = [e for e in filed.values() if e["t"] < record["closed_at"] - 1]
    # Before the cutover the BR-VT units' citizens file on their own portal, the others on the national one.
    assert {e["system"] for e in before if e["home_unit"] in BRVT} == {"brvt"}
    assert {e["system"] for e in before if e["home_unit"] not in BRVT} == {"national"}
    worked = Counter((e["system"], e["unit"] in BRVT) for e in events if e["kind"] == "received")
    assert worked[("brvt", True)] > 0 and worked[("brvt", False)] == 0 and worked[("hcmc", True)] > 0
    # The open ones migrated keeping their codes; every dossier of the stage is on HCMC's platform at the end.
    provincial, brvt = _codes(run_dir / "provincial.sqlite"), _codes(run_dir / "brvt.sqlite")
    assert record["imported"] == len(brvt) and set(record["codes"]) <= set(provincial)
    assert set(filed) <= set(provincial)
    # A former province's requests are named apart, so latency per request type reads per system.
    names = (run_dir / "stages" / "brvt" / "locust_stats.csv").read_text()
    assert "brvt /dichvucong/api/hoso" in names and "brvt /api/officer/queue" in names


def test_a_target_names_its_systems_and_adapters(tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    officers = tmp_path / "officers.csv"
    officers.write_text("unit,username\n26737,nguyen.van.a\n", encoding="utf-8")
    targets.write_text(f"""\
allowed_hosts: [127.0.0.1]
targets:
  staging:
    systems:
      national: {{url: "http://127.0.0.1:9001/", adapter: national}}
      provincial: {{url: "http://127.0.0.1:9002", adapter: "mycity.onestop:Adapter", name: hcmc}}
      city: {{url: "http://127.0.0.1:9003"}}
    accounts: {{officers: {officers}}}
    officer_password_env: STAGING_OFFICERS
""", encoding="utf-8")
    target = resolve_target("staging", path=targets)
    assert target.system_url("national") == "http://127.0.0.1:9001" and target.url == "http://127.0.0.1:9001"
    assert dict(target.accounts) == {"officers": str(officers)}
    with pytest.raises(TargetError, match="never answered"):
        reach_systems(target)  # nothing listens there: one line, before any load
    broken = tmp_path / "broken.yaml"
    broken.write_text("allowed_hosts: [127.0.0.1]\ntargets:\n  broken:\n    systems:\n"
                      "      national: {url: 'http://127.0.0.1:9001'}\n      portal: {url: 'http://127.0.0.1:9002'}\n",
                      encoding="utf-8")
    with pytest.raises(TargetError, match=r"systems.portal: unknown system"):
        resolve_target("broken", path=broken)
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(targets.read_text().replace("allowed_hosts: [127.0.0.1]", "allowed_hosts: [localhost]"),
                         encoding="utf-8")
    with pytest.raises(TargetError, match=r"\(systems.national.url\) is not in allowed_hosts"):
        resolve_target("staging", path=elsewhere)


def test_where_users_start_and_where_they_move() -> None:
    systems = Systems([SystemEntry("national", "national", "http://127.0.0.1:1"),
                       SystemEntry("hcmc", "provincial", "http://127.0.0.1:2", front_door_url="http://127.0.0.1:3",
                                   front_door="city"),
                       SystemEntry("brvt", "provincial", "http://127.0.0.1:4", front_door_url="http://127.0.0.1:5")])
    assert systems.place("city", "citizen").url.endswith(":3") and systems.place("city", "officer").url.endswith(":2")
    assert systems.place("brvt", "citizen").adapter == "city" and systems.place("brvt", "officer").url.endswith(":4")
    assert systems.moved("http://127.0.0.1:1", "citizen").system == "national"
    assert systems.moved("http://127.0.0.1:2", "officer").system == "hcmc"
    assert systems.stats_urls() == {"national": ["http://127.0.0.1:1"], "hcmc": ["http://127.0.0.1:2"],
                                    "city": ["http://127.0.0.1:3"],
                                    "brvt": ["http://127.0.0.1:4", "http://127.0.0.1:5"]}
    # One portal with both roles (a target with one url): citizens and officers alike, counted once.
    single = Systems.single("http://127.0.0.1:8000")
    assert single.home("citizen").adapter == "national" and single.home("officer").adapter == "onestop"
    assert single.home("citizen").url == single.home("officer").url and len(single.stats_urls()) == 1


def test_a_targets_integration_account_reaches_reconciliation_and_a_typo_is_named(tmp_path: Path) -> None:
    """The national portal's integration account travels target → systems.json → the TraCuuHoSo sign-in."""
    import http.server
    import threading

    from rehearsal.results.national import NationalAccount

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    targets = tmp_path / "targets.yaml"
    body = f"""\
allowed_hosts: [127.0.0.1]
targets:
  staging:
    systems:
      national:
        url: {url}
        integration: {{username: dongnai, ma_don_vi: 000.00.00.H19, password_env: STAGING_LINK}}
      provincial: {{url: {url}, adapter: onestop}}
    city_password_env: STAGING_CITY
"""
    targets.write_text(body, encoding="utf-8")
    try:
        systems = reach_systems(resolve_target("staging", path=targets))
    finally:
        server.shutdown()
    systems.write(tmp_path / "systems.json")
    national = json.loads((tmp_path / "systems.json").read_text())["national"]
    assert national["integration"] == {"username": "dongnai", "ma_don_vi": "000.00.00.H19", "password_env": "STAGING_LINK"}
    account = NationalAccount.from_entry(Systems.load(tmp_path / "systems.json").as_dict()["national"],
                                         {"STAGING_LINK": "s3cret"})
    assert (account.username, account.ma_don_vi, account.password) == ("dongnai", "000.00.00.H19", "s3cret")
    assert "s3cret" not in (tmp_path / "systems.json").read_text()
    for wrong, message in ((body.replace("city_password_env", "citizen_password_env"),
                            r"targets.staging: unknown key 'citizen_password_env' \(did you mean 'city_password_env'\?\)"),
                           (body.replace("password_env: STAGING_LINK", "password: s3cret"),
                            r"systems.national.integration: expected \{username, ma_don_vi, password_env\}"),
                           (body.replace("adapter: onestop", "adaptor: onestop"),
                            r"systems.provincial: unknown key 'adaptor' \(did you mean 'adapter'\?\)")):
        targets.write_text(wrong, encoding="utf-8")
        with pytest.raises(TargetError, match=message):
            resolve_target("staging", path=targets)
