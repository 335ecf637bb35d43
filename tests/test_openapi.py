"""The portal's OpenAPI document, and a property-based fuzz of the running portal against it.

schemathesis generates requests for every documented operation (valid and
invalid bodies, odd path and query values) and checks each answer: never a
5xx, a documented status code and content type, and a body that matches the
documented schema. It runs as a citizen (a real session token), so officer
and admin operations are exercised for their refusals too; the portal has an
admin token, so no fuzzed request can switch a fault on.
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

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("REHEARSAL_FUZZ_EXAMPLES", "50"))


@pytest.fixture(scope="module")
def fuzz_portal(tmp_path_factory: pytest.TempPathFactory):
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    os.environ["REHEARSAL_ADMIN_TOKEN"] = "fuzz-admin-token-not-sent"
    try:
        portal = start_portal(tmp, "--time-scale", "3600")
    finally:
        del os.environ["REHEARSAL_ADMIN_TOKEN"]
    portal.token = portal.citizen("079111111111")  # type: ignore[attr-defined]
    yield portal
    stop_portal(portal)


@pytest.fixture(scope="module")
def api_schema(fuzz_portal):
    return schemathesis.openapi.from_url(fuzz_portal.base_url + "/openapi.json")


def test_the_document_covers_every_route(fuzz_portal) -> None:
    status, doc = fuzz_portal.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    documented = set(doc["paths"])
    assert len(documented) >= 25
    for path in ("/api/dossiers", "/api/officer/dossiers/{dossier_id}/decide", "/api/admin/faults", "/metrics"):
        assert path in documented


def test_fuzz_no_5xx_and_answers_as_documented(api_schema, fuzz_portal) -> None:
    # Driven by hypothesis directly (not schemathesis's pytest plugin, which lags pytest releases).
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 29
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def fuzz(case) -> None:
            case.call_and_validate(base_url=fuzz_portal.base_url, checks=CHECKS,
                                   headers={"Authorization": f"Bearer {fuzz_portal.token}"})
        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 (collect every operation's failure, then report them all)
            failures.append(f"{operation.label}: {str(exc)[:400]}")
    assert not failures, "\n\n".join(failures)


def test_the_fuzz_sent_hundreds_of_requests_and_the_portal_counted_no_5xx(fuzz_portal) -> None:
    # Runs after the fuzz above (file order): the portal's own account of what it was sent.
    _, stats = fuzz_portal.call("GET", "/api/stats")
    total = sum(t["count"] for t in stats["requests"].values())
    errors = sum(t["errors"] for t in stats["requests"].values())
    print(f"fuzz: {total} requests over {len(stats['requests'])} endpoints, {errors} answered 5xx")
    assert total >= 300 and errors == 0
