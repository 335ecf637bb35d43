"""Each system's OpenAPI document, and the two property-based fuzzes of the running system against it.

The national portal (its citizens' calls and the integration API), a
provincial system (its officers' calls and the operator's) and the
city-style front door (its own API) each serve their own ``/openapi.json``.
As for the single portal (tests/test_openapi.py), schemathesis checks that
generated input gets no 5xx and documented answers, and the hostile fuzz
(`hostile_fuzz.HostileFuzz`, told which system it talks to) throws deep
nesting, huge integers, lone surrogates, wrong JSON types, boundary dates
and counts, other scripts' digits and over-long request lines at every
field of every documented operation and finds no 5xx. Bounded like the
single portal's (``REHEARSAL_FUZZ_EXAMPLES``,
``REHEARSAL_FUZZ_HOSTILE_EXAMPLES``); the figures are printed and recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import PortalClient, start_portal, stop_portal
from hostile_fuzz import HostileFuzz, fuzz_every_operation
from test_openapi import HOSTILE_EXAMPLES, schemathesis_failures
from twosystems import SCALE

ADMIN_TOKEN = "fuzz-admin-token-systems"
SYSTEMS = ("national", "provincial", "city")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    """A national portal and a provincial system (no link) with its front door, each with an admin token."""
    tmp: Path = tmp_path_factory.mktemp("systems-fuzz")
    os.environ["REHEARSAL_ADMIN_TOKEN"] = ADMIN_TOKEN
    door_port = tmp / "provincial" / "door.port"
    try:
        national = start_portal(tmp / "national", "--system", "national", "--time-scale", SCALE)
        provincial = start_portal(tmp / "provincial", "--system", "provincial", "--time-scale", SCALE,
                                  "--front-door-port", "0", "--front-door-port-file", str(door_port))
    finally:
        del os.environ["REHEARSAL_ADMIN_TOKEN"]
    door = PortalClient(f"http://127.0.0.1:{door_port.read_text().strip()}", provincial.db_path, provincial.proc,
                        door_port)
    yield {"national": national, "provincial": provincial, "city": door}
    stop_portal(provincial)
    stop_portal(national)


def _credentials(system: str, portal: PortalClient) -> dict[str, str]:
    if system == "national":
        return {"Authorization": f"Bearer {portal.citizen('079111111111')}"}
    if system == "provincial":
        return {"Authorization": f"Bearer {portal.officer(26506)}"}
    _, signed = portal.call("POST", "/dichvucong/api/taikhoan/dangnhap", {"tenDangNhap": "079111111111",
                                                                          "matKhau": "rehearsal"})
    return {"X-Ma-Phien": signed["duLieu"]["maPhien"]}


@pytest.mark.parametrize("system, paths", [
    ("national", ("/api/dvcqg/auth", "/api/dvcqg/service", "/api/dossiers", "/api/auth/vneid/otp")),
    ("provincial", ("/api/officer/queue", "/api/officer/dossiers/{dossier_id}/decide", "/api/admin/link",
                    "/api/admin/import")),
    ("city", ("/dichvucong/api/taikhoan/dangnhap", "/dichvucong/api/hoso", "/dichvucong/api/hoso/{ma_ho_so}/rut",
              "/api/admin/close")),
])
def test_each_system_documents_its_own_routes(running, system: str, paths: tuple[str, ...]) -> None:
    status, doc = running[system].call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(paths) <= set(doc["paths"])
    other = {"national": "/api/officer/queue", "provincial": "/api/dossiers", "city": "/api/dvcqg/service"}[system]
    assert other not in doc["paths"]


@pytest.mark.parametrize("system", SYSTEMS)
def test_fuzz_no_5xx_and_answers_as_documented(running, system: str) -> None:
    portal = running[system]
    operations, failures = schemathesis_failures(portal.base_url, _credentials(system, portal))
    assert operations >= 15
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("system", SYSTEMS)
def test_hostile_input_at_every_operation_of_each_system_finds_no_5xx(running, system: str,
                                                                      record_property) -> None:
    fuzz = HostileFuzz(running[system], ADMIN_TOKEN, system)
    operations, figures = fuzz_every_operation(fuzz, HOSTILE_EXAMPLES)
    print(f"hostile fuzz ({system}): {figures}")
    for name, value in figures.items():
        record_property(f"hostile_fuzz_{system}_{name}", value)
    assert operations >= 15 and fuzz.requests >= operations * min(HOSTILE_EXAMPLES, 10)
    assert not fuzz.failures, f"{len(fuzz.failures)} failures:\n" + "\n".join(fuzz.failures[:30])


@pytest.mark.parametrize("system", SYSTEMS)
def test_each_system_counted_no_5xx_of_its_own(running, system: str) -> None:
    # Runs after the fuzzes above (file order): each system's own account of what it was sent.
    _, stats = running[system].call("GET", "/api/stats")
    total = sum(t["count"] for t in stats["requests"].values())
    errors = sum(t["errors"] for t in stats["requests"].values())
    print(f"{system}: {total} requests over {len(stats['requests'])} endpoints, {errors} answered 5xx")
    assert total >= 300 and errors == 0
