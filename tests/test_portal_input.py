"""Hostile input at the real portal: each class refused as a JSON 4xx naming its field, never a 5xx.

The classes (issue 15, item 1 and 2): JSON nested very deep, integers beyond
64 bits (bodies, paths, query strings), lone UTF-16 surrogates, a list or an
object where text is expected, admin import rows missing or mistyping a
field, dates and counts out of bounds, attachments over their limits, JSON
bodies over their limit, over-long request lines and headers (answered by
the server itself), and ID numbers that are not exactly 12 ASCII digits.
One portal serves the whole module: what is refused changes nothing.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest

from conftest import PortalClient, start_portal, stop_portal

U1 = 26506
DEATH_FORM = {"deceased_name": "Nguyễn Văn A", "deceased_id": "079000000001", "date_of_death": "2025-06-20"}


class Hostile:
    """The module's portal, a citizen and an officer of U1, and one dossier of theirs at status 1."""

    def __init__(self, portal: PortalClient) -> None:
        self.portal = portal
        self.citizen = portal.citizen("079555000001")
        self.officer = portal.officer(U1)
        status, d = portal.call("POST", "/api/dossiers", token=self.citizen,
                                files=[("procedure_code", "HT-02"), ("unit_code", str(U1)),
                                       ("form", json.dumps(DEATH_FORM)), ("death_notice", ("d.pdf", b"%PDF-1", "a/b"))])
        assert status == 201, d
        self.dossier = d["id"]

    def raw(self, method: str, path: str, data: bytes | None = None, *, token: str | None = None,
            headers: dict[str, str] | None = None, content_type: str = "application/json") -> tuple[int, Any]:
        """One request with a body of exactly these bytes; the status and the parsed JSON answer."""
        host, port = self.portal.base_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        hdrs = dict(headers or {})
        if data is not None:
            hdrs["Content-Type"] = content_type
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=data, headers=hdrs)
            response = conn.getresponse()
            status, raw = response.status, response.read()
        finally:
            conn.close()
        return status, json.loads(raw)  # every answer is JSON: a text body fails here

    def token_for(self, who: str | None) -> str | None:
        return {"citizen": self.citizen, "officer": self.officer}.get(who or "")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    portal = start_portal(tmp_path_factory.mktemp("hostile"), "--time-scale", "3600")
    try:
        yield Hostile(portal)
    finally:
        stop_portal(portal)


def _refused(status: int, body: Any, field: str | None, *, code: int = 400) -> None:
    assert status == code, body
    assert set(body) >= {"error", "field", "message"} and body["message"], body
    if field is not None:
        assert body["field"] is not None and body["field"].startswith(field), body


#: Every call that takes a JSON body: (method, path, role, a valid body, the field to spoil).
JSON_CALLS = [
    ("POST", "/api/auth/vneid/otp", None, {"id_number": "079555000002"}, "id_number"),
    ("POST", "/api/auth/vneid/verify", None, {"otp_request_id": "x", "otp": "123456"}, "otp"),
    ("POST", "/api/auth/officer", None, {"username": "cb26506-1", "password": "rehearsal"}, "username"),
    ("POST", "/api/auth/officer", None, {"username": "cb26506-1", "password": "rehearsal"}, "password"),
    ("POST", "/api/officer/dossiers/{id}/refuse-intake", "officer", {"reason": "Sai"}, "reason"),
    ("POST", "/api/officer/dossiers/{id}/request-supplement", "officer", {"reason": "Thiếu"}, "reason"),
    ("POST", "/api/officer/dossiers/{id}/decide", "officer", {"decision": "refused", "reason": "x"}, "decision"),
    ("POST", "/api/officer/dossiers/{id}/decide", "officer", {"decision": "refused", "reason": "x"}, "reason"),
    ("POST", "/api/officer/dossiers/{id}/stop", "officer", {"reason": "x"}, "reason"),
    ("POST", "/api/dossiers/{id}/withdraw", "citizen", {"reason": "x"}, "reason"),
    ("PUT", "/api/admin/faults", None, {"faults": []}, "faults"),
    ("POST", "/api/admin/close", None, {"mode": "503", "moved_to": "http://127.0.0.1:9"}, "moved_to"),
    ("POST", "/api/admin/close", None, {"mode": "503", "moved_to": "http://127.0.0.1:9"}, "retry_after_s"),
    ("POST", "/api/admin/import", None, {"items": []}, "items"),
]
#: Hostile values as JSON text, the class each stands for, and the status it must get.
HOSTILE_JSON = [
    ("[" * 40 + "]" * 40, "nesting past 32 levels", 400),
    ("[" * 20_000 + "]" * 20_000, "nesting past the parser's recursion limit", 400),
    ("9" * 5000, "an integer of 5,000 digits", 400),
    (str(2**63), "an integer of 2^63", 400),
    (str(-(2**63) - 1), "an integer below -2^63", 400),
    ("1e999", "a float that is infinite", 400),
    ("NaN", "NaN", 400),
    ('"\\ud800"', "a lone high surrogate", 400),
    ('"abc\\udfff"', "a lone low surrogate after text", 400),
    ('["x"]', "a list where text is expected", 400),
    ('{"a": "b"}', "an object where text is expected", 400),
]


@pytest.mark.parametrize("method, path, role, valid, field", JSON_CALLS,
                         ids=[f"{c[1].rsplit('/', 1)[-1]}.{c[4]}" for c in JSON_CALLS])
@pytest.mark.parametrize("value, what, code", HOSTILE_JSON, ids=[h[1] for h in HOSTILE_JSON])
def test_a_hostile_value_in_any_json_field_is_a_4xx_naming_it(hostile: Hostile, method: str, path: str,
                                                               role: str | None, valid: dict, field: str,
                                                               value: str, what: str, code: int) -> None:
    if field in ("faults", "items") and what.startswith("a list"):
        value = '[["x"]]'  # a list is what these take: a list of the wrong thing instead
    body = json.dumps({k: v for k, v in valid.items() if k != field})[:-1]
    body += (", " if len(body) > 1 else "") + f'"{field}": {value}}}'
    status, answer = hostile.raw(method, path.format(id=hostile.dossier), body.encode(), token=hostile.token_for(role))
    _refused(status, answer, field, code=code)


def test_a_surrogate_in_a_key_or_deep_inside_is_named_by_its_place(hostile: Hostile) -> None:
    status, body = hostile.raw("PUT", "/api/admin/faults", b'{"faults": [{"kind": "outage", "\\ud800": 1}]}')
    _refused(status, body, "faults[0].\\ud800")
    status, body = hostile.raw("POST", "/api/admin/import", b'{"items": [{"history": [{"note": "\\udc00"}]}]}')
    _refused(status, body, "items[0].history[0].note")


@pytest.mark.parametrize("size, code", [(70_000, 413), (200_000, 413), (40 * 2**20, 413)])
def test_a_json_body_over_its_limit_is_413_before_it_is_parsed(hostile: Hostile, size: int, code: int) -> None:
    data = b'{"id_number": "' + b"[" * size + b'"}'
    status, body = hostile.raw("POST", "/api/auth/vneid/otp", data)
    assert status == code and body["error"] == "too_large", body


def test_a_chunked_json_body_over_its_limit_is_413_too(hostile: Hostile) -> None:
    host, port = hostile.portal.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/auth/vneid/otp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        chunk = b"[" * 60_000
        for _ in range(3):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and json.loads(body)["error"] == "too_large", answer[:300]


@pytest.mark.parametrize("path, field", [
    ("/api/dossiers/" + "9" * 30, "dossier_id"),
    ("/api/dossiers/" + "9" * 5000, "dossier_id"),
    (f"/api/dossiers/{2**63}", "dossier_id"),
    ("/api/dossiers/%D9%A1%D9%A2%D9%A3", "dossier_id"),         # Arabic-Indic ١٢٣: not dossier 123
    ("/api/dossiers/%EF%BC%91%EF%BC%92", "dossier_id"),         # full-width １２
    ("/api/dossiers/-1", "dossier_id"),
    (f"/api/dossiers/{2**63 - 1}", "id"),                        # the largest id: a real look-up, not found
    ("/api/officer/dossiers/" + "9" * 40 + "/receive", "dossier_id"),
    ("/api/dossiers/" + "9" * 40 + "/withdraw", "dossier_id"),
])
def test_a_path_id_that_is_not_a_64_bit_ascii_number_is_404_naming_it(hostile: Hostile, path: str,
                                                                       field: str) -> None:
    role = "officer" if "/officer/" in path else "citizen"
    method = "GET" if path.count("/") == 3 else "POST"
    status, body = hostile.raw(method, path, b"{}" if method == "POST" else None, token=hostile.token_for(role))
    assert status == 404 and body["field"] == field, body


@pytest.mark.parametrize("query, role, field", [
    ("/api/officer/queue?status=" + "9" * 30, "officer", "status"),
    ("/api/officer/queue?status=1,99", "officer", "status"),
    ("/api/officer/queue?status=%D9%A1", "officer", "status"),
    ("/api/officer/queue?limit=" + "9" * 30, "officer", "limit"),
    ("/api/officer/queue?limit=1e3", "officer", "limit"),
    ("/api/admin/dossiers?after_id=" + "9" * 30, None, "after_id"),
    ("/api/admin/dossiers?after_id=" + "9" * 5000, None, "after_id"),
    ("/api/admin/dossiers?limit=-" + "9" * 25, None, "limit"),
    ("/api/procedures?page=" + "9" * 30, None, "page"),
    ("/api/procedures?per_page=" + "9" * 30, None, "per_page"),
    ("/api/procedures?page=%EF%BC%92", None, "page"),
    ("/api/procedures?q=" + "a" * 1000, None, "q"),
    ("/api/payments/callback?payment_id=x&result=success&signature=%C3%A9", None, "signature"),
])
def test_a_bad_query_value_is_400_naming_its_parameter(hostile: Hostile, query: str, role: str | None,
                                                       field: str) -> None:
    status, body = hostile.raw("GET", query, token=hostile.token_for(role))
    _refused(status, body, field)


def test_the_largest_ids_and_limits_still_answer(hostile: Hostile) -> None:
    for query in (f"/api/admin/dossiers?after_id={2**63 - 1}", f"/api/officer/queue?limit={2**63 - 1}&status=7",
                  f"/api/procedures?page={2**63 - 1}&per_page=0"):
        status, _ = hostile.raw("GET", query, token=hostile.officer)
        assert status == 200, query


@pytest.mark.parametrize("id_number", ["079000000011\n", "079000000011 ", " 079000000011",
                                       "０７９０００００００１１", "٠٧٩٠٠٠٠٠٠٠١١", "۰۷۹۰۰۰۰۰۰۰۱۱", "07900000001", "0790000000111"])
def test_an_id_number_is_exactly_12_ascii_digits_everywhere(hostile: Hostile, multipart: Any, id_number: str) -> None:
    status, body = hostile.portal.call("POST", "/api/auth/vneid/otp", {"id_number": id_number})
    _refused(status, body, "id_number")
    form = {**DEATH_FORM, "deceased_id": id_number}
    status, body = hostile.portal.call("POST", "/api/dossiers", token=hostile.citizen,
                                       files=multipart("HT-02", U1, form, {"death_notice": b"x"}))
    _refused(status, body, "form.deceased_id")
    status, body = hostile.portal.call("POST", "/api/admin/import", {"items": [_import_row(id_number=id_number)]})
    _refused(status, body, "items[0].id_number")


def test_one_person_signs_in_as_one_citizen(hostile: Hostile) -> None:
    ids = {hostile.portal.call("GET", "/api/dossiers", token=hostile.portal.citizen("079555000009"))[0]
           for _ in range(2)}
    assert ids == {200}
    with __import__("sqlite3").connect(hostile.portal.db_path) as db:
        rows = db.execute("SELECT id_number FROM citizens WHERE id_number LIKE '%079555000009%'").fetchall()
    assert rows == [("079555000009",)]


@pytest.mark.parametrize("procedure, change, field", [
    ("HT-02", {"date_of_death": "2024-99-99"}, "form.date_of_death"),
    ("HT-02", {"date_of_death": "2023-02-29"}, "form.date_of_death"),
    ("HT-02", {"date_of_death": "1899-12-31"}, "form.date_of_death"),
    ("HT-02", {"date_of_death": "２０２４-０１-０１"}, "form.date_of_death"),
    ("HT-02", {"date_of_death": ["2024-01-01"]}, "form.date_of_death"),
    ("HT-02", {"deceased_name": {"a": 1}}, "form.deceased_name"),
    ("HT-02", {"deceased_name": "x" * 501}, "form.deceased_name"),
    ("CT-01", {"copies": "-5"}, "form.copies"),
    ("CT-01", {"copies": -5}, "form.copies"),
    ("CT-01", {"copies": "0"}, "form.copies"),
    ("CT-01", {"copies": "101"}, "form.copies"),
    ("CT-01", {"copies": "2.5"}, "form.copies"),
    ("CT-01", {"copies": "1e3"}, "form.copies"),
    ("CT-01", {"copies": True}, "form.copies"),
    ("CT-01", {"copies": 2**64}, "form.copies"),
])
def test_dates_are_real_and_counts_within_bounds(hostile: Hostile, multipart: Any, procedure: str, change: dict,
                                                  field: str) -> None:
    form = {**(DEATH_FORM if procedure == "HT-02" else {"document_type": "Căn cước", "copies": "2"}), **change}
    name = "death_notice" if procedure == "HT-02" else "original_scan"
    status, body = hostile.portal.call("POST", "/api/dossiers", token=hostile.citizen,
                                       files=multipart(procedure, U1, form, {name: b"x"}))
    _refused(status, body, field)


@pytest.mark.parametrize("procedure, change", [
    ("HT-02", {"date_of_death": "2024-02-29"}), ("HT-02", {"date_of_death": "1900-01-01"}),
    ("CT-01", {"copies": "1"}), ("CT-01", {"copies": "100"}), ("CT-01", {"copies": 3}),
])
def test_boundary_dates_and_counts_that_are_fine_are_taken(hostile: Hostile, multipart: Any, procedure: str,
                                                            change: dict) -> None:
    form = {**(DEATH_FORM if procedure == "HT-02" else {"document_type": "Căn cước", "copies": "2"}), **change}
    name = "death_notice" if procedure == "HT-02" else "original_scan"
    status, body = hostile.portal.call("POST", "/api/dossiers", token=hostile.citizen,
                                       files=multipart(procedure, U1, form, {name: b"x"}))
    assert status == 201, body


@pytest.mark.parametrize("form_text, field", [
    ("[" * 20_000 + "]" * 20_000, "form"),
    ('{"deceased_name": ' + "[" * 50 + "]" * 50 + "}", "form.deceased_name"),
    ('{"deceased_name": "A", "x": ' + "9" * 5000 + "}", "form.x"),
    ('["a"]', "form"),
    ('{"deceased_name": "\\ud800", "deceased_id": "079000000001"}', "form.deceased_name"),
])
def test_the_form_text_is_read_by_the_same_json_rules(hostile: Hostile, form_text: str, field: str) -> None:
    files = [("procedure_code", "HT-02"), ("unit_code", str(U1)), ("form", form_text),
             ("death_notice", ("d.pdf", b"x", "application/pdf"))]
    status, body = hostile.portal.call("POST", "/api/dossiers", token=hostile.citizen, files=files)
    _refused(status, body, field)


@pytest.mark.parametrize("unit_code", ["٢٦٥٠٦", " 26506", "26506\n", "2" * 30, "+26506"])
def test_a_unit_code_is_ascii_digits(hostile: Hostile, unit_code: str) -> None:
    files = [("procedure_code", "HT-02"), ("unit_code", unit_code), ("form", json.dumps(DEATH_FORM)),
             ("death_notice", ("d.pdf", b"x", "application/pdf"))]
    status, body = hostile.portal.call("POST", "/api/dossiers", token=hostile.citizen, files=files)
    _refused(status, body, "unit_code")


def test_one_file_per_attachment_name(hostile: Hostile) -> None:
    files = [("procedure_code", "HT-02"), ("unit_code", str(U1)), ("form", json.dumps(DEATH_FORM))]
    files += [("death_notice", (f"d{i}.pdf", b"x" * 1000, "application/pdf")) for i in range(3)]
    status, body = hostile.portal.call("POST", "/api/dossiers", token=hostile.citizen, files=files)
    _refused(status, body, "death_notice")


def test_raw_bytes_that_are_not_utf8_never_give_a_5xx(hostile: Hostile) -> None:
    for data in (b'{"id_number": "\xed\xa0\x80"}', b'{"id_number": "\xff\xfe"}', b"\xff\xfe\x00\x00"):
        status, body = hostile.raw("POST", "/api/auth/vneid/otp", data)
        assert 400 <= status < 500 and body["field"] in ("id_number", None), body
    boundary = "b0undary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"procedure_code\"\r\n\r\nHT-02\xed\xa0\x80\r\n"
            f"--{boundary}--\r\n").encode("latin-1")
    status, body = hostile.raw("POST", "/api/dossiers", form, token=hostile.citizen,
                               content_type=f"multipart/form-data; boundary={boundary}")
    _refused(status, body, "procedure_code")


def test_what_the_server_refuses_itself_is_json_too(hostile: Hostile) -> None:
    # A 10,000-character search: over gevent's 8,192-byte request line, answered 414 naming the parameter.
    status, body = hostile.raw("GET", "/api/procedures?page=1&q=" + "a" * 10_000)
    assert (status, body["error"], body["field"]) == (414, "too_long", "q")
    status, body = hostile.raw("GET", "/api/procedures/" + "a" * 10_000)
    assert (status, body["field"]) == (414, "path")
    host, port = hostile.portal.base_url.removeprefix("http://").split(":")
    for request, code in ((b"GET /api/health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150))
                           + b"\r\n", 431),
                          (b"GET /api/health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
                          (b"NONSENSE\r\n\r\n", 400), (b"GET / HTTP/9.9\r\n\r\n", 400),
                          (b"GET /api/health HTTP/1.1\r\nContent-Length: many\r\n\r\n", 400)):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request)
            answer = b""
            while data := sock.recv(65536):
                answer += data
        head, _, text = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d" % code) and b"application/json" in head, answer[:200]
        assert set(json.loads(text)) == {"error", "field", "message"}
    # And the portal is healthy after all of it, its log without a traceback.
    assert hostile.portal.call("GET", "/api/health")[0] == 200


def test_werkzeugs_own_refusals_are_json(hostile: Hostile) -> None:
    status, body = hostile.raw("POST", "/api/dossiers", b"--x\r\nbroken", token=hostile.citizen,
                               content_type="multipart/form-data")  # no boundary
    assert 400 <= status < 500 and body["error"], body
    status, body = hostile.raw("DELETE", "/api/health")
    assert (status, body["error"]) == (405, "method_not_allowed")


# -- the admin import -------------------------------------------------------------------------

def _import_row(**change: Any) -> dict[str, Any]:
    row = {"id": 4242, "code": "H79.26506-250620-0004242", "client_ref": None, "id_number": "079555000042",
           "unit_code": U1, "procedure_code": "HT-02", "lien_thong": 1, "fee_vnd": 0, "paid": 0, "status": 2,
           "agency_state": None, "agency_due": None, "agency_done": 0, "decision": None, "reason": None,
           "supplement_reason": None, "supplement_count": 0, "form": json.dumps(DEATH_FORM),
           "submitted_at": "2025-06-18T10:00:00.000Z", "received_at": "2025-06-18T11:00:00.000Z",
           "due_at": "2025-06-19T11:00:00.000Z", "decided_at": None, "returned_at": None,
           "updated_at": "2025-06-18T11:00:00.000Z",
           "history": [{"at": "2025-06-18T10:00:00.000Z", "status": 1, "actor": "citizen:1", "note": None}],
           "attachments": [{"name": "death_notice", "filename": "d.pdf", "size": 6, "sha256": "0" * 64}]}
    row.update(change)
    return {k: v for k, v in row.items() if v != "<drop>"}


REQUIRED = ["id", "code", "id_number", "unit_code", "procedure_code", "status", "form", "submitted_at",
            "updated_at"]
MISTYPED = [("id", "4242"), ("id", 0), ("id", 2**63), ("code", 7), ("unit_code", "26506"), ("unit_code", 99999),
            ("status", 99), ("status", 0), ("status", "2"), ("status", True), ("paid", 2), ("lien_thong", "yes"),
            ("fee_vnd", -1), ("fee_vnd", 1.5), ("agency_state", "lost"), ("agency_due", "soon"),
            ("decision", "maybe"), ("reason", ["x"]), ("supplement_count", -1), ("form", {"a": 1}),
            ("form", "not json"), ("form", "[1]"), ("submitted_at", "yesterday"), ("received_at", 5),
            ("client_ref", "r" * 65), ("history", {"at": 1}), ("history", [5]),
            ("history", [{"at": "2025-06-18T10:00:00Z", "status": 99, "actor": "x"}]),
            ("history", [{"at": "2025-06-18T10:00:00Z", "status": 1}]),
            ("attachments", [{"name": "a", "size": -1, "sha256": "0" * 64}]),
            ("attachments", [{"name": "a", "size": 1, "sha256": "xyz"}]),
            ("attachments", [{"name": "a", "sha256": "0" * 64}])]


@pytest.mark.parametrize("field", REQUIRED)
def test_an_import_row_missing_a_field_is_refused_naming_it(hostile: Hostile, field: str) -> None:
    status, body = hostile.portal.call("POST", "/api/admin/import", {"items": [_import_row(**{field: "<drop>"})]})
    _refused(status, body, f"items[0].{field}")


@pytest.mark.parametrize("field, value", MISTYPED, ids=[f"{f}={v!r}"[:40] for f, v in MISTYPED])
def test_an_import_row_mistyping_a_field_is_refused_naming_it(hostile: Hostile, field: str, value: Any) -> None:
    status, body = hostile.portal.call("POST", "/api/admin/import", {"items": [_import_row(**{field: value})]})
    _refused(status, body, f"items[0].{field}")


def test_an_unknown_status_never_gets_in_and_the_citizen_can_still_list_their_dossiers(hostile: Hostile) -> None:
    row = _import_row(id=4343, code="H79-4343", id_number="079555000043", status=99)
    status, body = hostile.portal.call("POST", "/api/admin/import", {"items": [row]})
    _refused(status, body, "items[0].status")
    token = hostile.portal.citizen("079555000043")
    assert hostile.portal.call("GET", "/api/dossiers", token=token) == (200, {"items": []})
