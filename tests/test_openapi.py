"""The portal's OpenAPI document, and two property-based fuzzes of the running portal against it.

schemathesis generates requests for every documented operation (valid and
invalid bodies, odd path and query values) and checks each answer: never a
5xx, a documented status code and content type, and a body that matches the
documented schema. It runs as a citizen (a real session token), so officer
and admin operations are exercised for their refusals too; the portal has an
admin token, so no fuzzed request can switch a fault on.

The hostile fuzz (`hostile_fuzz.HostileFuzz`) then throws the classes of bad
input that once gave 500s (deep nesting, huge integers, lone surrogates,
wrong JSON types, boundary dates and counts, other scripts' digits, over-long
request lines) at every field of every documented operation, each with the
role it needs (admin calls with the admin token), and finds no 5xx. Both
are bounded (``REHEARSAL_FUZZ_EXAMPLES``, ``REHEARSAL_FUZZ_HOSTILE_EXAMPLES``
examples per operation) to run in CI on two shared cores; the figures
(operations, requests, answers by class, 5xx) are printed and recorded as
test properties (JUnit XML).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from conftest import start_portal, stop_portal
from hostile_fuzz import HostileFuzz, fuzz_every_operation

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("REHEARSAL_FUZZ_EXAMPLES", "50"))
HOSTILE_EXAMPLES = int(os.environ.get("REHEARSAL_FUZZ_HOSTILE_EXAMPLES", "40"))
ADMIN_TOKEN = "fuzz-admin-token-not-sent"


@pytest.fixture(scope="module")
def fuzz_portal(tmp_path_factory: pytest.TempPathFactory):
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    os.environ["REHEARSAL_ADMIN_TOKEN"] = ADMIN_TOKEN
    try:
        portal = start_portal(tmp, "--time-scale", "3600")
    finally:
        del os.environ["REHEARSAL_ADMIN_TOKEN"]
    portal.token = portal.citizen("079111111111")  # type: ignore[attr-defined]
    yield portal
    stop_portal(portal)


def test_the_document_covers_every_route(fuzz_portal) -> None:
    status, doc = fuzz_portal.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    documented = set(doc["paths"])
    assert len(documented) >= 25
    for path in ("/api/dossiers", "/api/officer/dossiers/{dossier_id}/decide", "/api/admin/faults", "/metrics"):
        assert path in documented


def schemathesis_failures(base_url: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    """schemathesis's generated calls to every operation of the document at `base_url`: (operations, failures)."""
    api_schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def fuzz(case) -> None:
            case.call_and_validate(base_url=base_url, checks=CHECKS, headers=headers)
        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 (collect every operation's failure, then report them all)
            failures.append(f"{operation.label}: {str(exc)[:400]}")
    return len(operations), failures


def test_fuzz_no_5xx_and_answers_as_documented(fuzz_portal) -> None:
    # Driven by hypothesis directly (not schemathesis's pytest plugin, which lags pytest releases).
    operations, failures = schemathesis_failures(fuzz_portal.base_url,
                                                 {"Authorization": f"Bearer {fuzz_portal.token}"})
    assert operations >= 29
    assert not failures, "\n\n".join(failures)


def test_hostile_input_at_every_documented_operation_finds_no_5xx(fuzz_portal, record_property) -> None:
    fuzz = HostileFuzz(fuzz_portal, ADMIN_TOKEN)
    operations, figures = fuzz_every_operation(fuzz, HOSTILE_EXAMPLES)
    print(f"hostile fuzz: {figures}")
    for name, value in figures.items():
        record_property(f"hostile_fuzz_{name}", value)
    assert operations >= 33 and fuzz.requests >= operations * min(HOSTILE_EXAMPLES, 10)
    assert not fuzz.failures, f"{len(fuzz.failures)} failures:\n" + "\n".join(fuzz.failures[:30])


def test_the_fuzz_sent_hundreds_of_requests_and_the_portal_counted_no_5xx(fuzz_portal) -> None:
    # Runs after the fuzz above (file order): the portal's own account of what it was sent.
    _, stats = fuzz_portal.call("GET", "/api/stats")
    total = sum(t["count"] for t in stats["requests"].values())
    errors = sum(t["errors"] for t in stats["requests"].values())
    print(f"fuzz: {total} requests over {len(stats['requests'])} endpoints, {errors} answered 5xx")
    assert total >= 300 and errors == 0
