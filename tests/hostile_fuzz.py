"""Hostile input for every operation the portal documents: the classes of issue 15, drawn by hypothesis.

`HostileFuzz` reads ``/openapi.json`` and, for each operation, builds a
valid request (the right role's fresh session, a dossier and a payment of
its own, a valid body) and then spoils one place of it at a time: a JSON
body field (also inside an admin import row and inside a dossier's form), a
multipart field, a query or path parameter, or the credential header. The
values are the classes that gave 500s: nesting deeper than any parser's
recursion limit, integers of thousands of digits or just past 64 bits, NaN
and infinities, lone UTF-16 surrogates (escaped, and as raw bytes), a list
or an object where text is expected, calendar-breaking dates and counts out
of every bound, digits of other scripts, request lines over 8 KiB.

Each answer must be below 500, and a 4xx must be the portal's JSON
``{"error", "field", "message"}`` (the city-style front door's
``{"maLoi", "thongDiep", "truong"}``); a structural refusal (depth, number,
surrogate) of a JSON field must name that field. Admin operations are sent
with the admin token, and any that succeeds is undone at once (faults
cleared, door reopened, link started), so nothing fuzzed can make the portal
answer 503.

The same fuzz runs on each system (``system``): the single portal of old,
the national portal (its citizens' calls and the integration API, with a
valid integration session as the base of every call), a provincial system
(its officers' calls, on a dossier of its own imported first) and the
city-style front door (its own paths, names and session header).
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from conftest import PortalClient

U1 = 26506
DEATH_FORM = {"deceased_name": "Nguyễn Văn A", "deceased_id": "079000000001", "date_of_death": "2025-06-20"}
#: A valid value for every documented JSON or form field, by name.
GOOD = {"id_number": "079111111199", "otp_request_id": "nope", "otp": "000000", "username": "cb26506-1",
        "password": "wrong", "reason": "Lý do", "decision": "approved", "faults": [], "mode": "503",
        "moved_to": "http://127.0.0.1:9", "retry_after_s": 30, "items": [], "procedure_code": "HT-02",
        "unit_code": str(U1), "client_ref": "fuzz", "form": json.dumps(DEATH_FORM)}
#: Valid values for the systems' own fields (the integration API's, the city portal's).
GOOD_SYSTEMS = {"session": "", "madonvi": "000.00.00.H29", "service": "TraCuuHoSo", "data": {"MaHoSo": "x"},
                "isUpdating": "False", "action": "start", "tenDangNhap": "079111111166", "matKhau": "rehearsal",
                "lyDo": "Lý do", "maThuTuc": "HT-02", "maDonVi": str(U1), "thongTin": json.dumps(DEATH_FORM),
                "maGiaoDich": "fuzz"}
#: The multipart field holding a dossier's form, by path.
FORM_FIELD = {"/api/dossiers": "form", "/dichvucong/api/hoso": "thongTin"}
#: A valid admin import row (the import's inner places are its fields).
IMPORT_ROW = {"id": 777, "code": "H79-FUZZ-777", "id_number": "079111111177", "unit_code": U1,
              "procedure_code": "HT-02", "status": 2, "fee_vnd": 0, "form": json.dumps(DEATH_FORM),
              "submitted_at": "2025-06-18T10:00:00Z", "updated_at": "2025-06-18T10:00:00Z",
              "history": [{"at": "2025-06-18T10:00:00Z", "status": 1, "actor": "citizen:1"}],
              "attachments": [{"name": "death_notice", "size": 6, "sha256": "0" * 64}]}
#: Classes the input layer refuses wherever they are, naming their place: the answer must name the field spoilt.
STRUCTURAL = ("deep", "huge integer", "non-finite", "surrogate", "raw surrogate")


# -- the values ---------------------------------------------------------------------------------

def _nested(depth: int, as_object: bool) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth if as_object else b"[" * depth + b"]" * depth


def _json_text(value: Any) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: a lone surrogate becomes the escape \udXXX


_HUGE = st.one_of(st.integers(min_value=2**63, max_value=2**300), st.integers(min_value=-(2**300),
                                                                                 max_value=-(2**63) - 1),
                  st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**19])).map(str) | \
    st.integers(21, 6000).map(lambda n: "9" * n)
_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_BAD_DATES = st.one_of(st.tuples(st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99)).map(
    lambda t: f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}"), st.dates(date(1, 1, 1), date(9999, 12, 31)).map(str),
    st.sampled_from(["2024-99-99", "2023-02-29", "1899-12-31", "2101-01-01", "２０２４-０１-０１", "2024-1-1"]))
_COUNTS = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([-5, -1, 0, 101, 2**31, 2**63 - 1]),
                    st.floats(allow_nan=False, allow_infinity=False))
_DIGITS = st.sampled_from(["١٢٣", "۰۷۹۰۰۰۰۰۰۰۱۱", "０７９０００００００１１", "079000000011\n", " 12 ", "1_000", "+7"])


@st.composite
def json_values(draw: Any) -> tuple[str, bytes]:
    """(class, JSON text) for a JSON body field."""
    kind = draw(st.sampled_from(["deep", "huge integer", "non-finite", "surrogate", "raw surrogate", "wrong type",
                                 "date", "count", "count as text", "other digits"]))
    if kind == "deep":
        return kind, _nested(draw(st.sampled_from([33, 999, 20_000, 100_000])), draw(st.booleans()))
    if kind == "huge integer":
        return kind, draw(_HUGE).encode()
    if kind == "non-finite":
        return kind, draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"]))
    if kind == "surrogate":
        return kind, _json_text(draw(st.text(max_size=4)) + draw(_SURROGATE) + draw(st.text(max_size=4)))
    if kind == "raw surrogate":  # the surrogate's UTF-8 bytes (not valid UTF-8), not its escape
        return kind, b'"' + draw(_SURROGATE).encode("utf-8", "surrogatepass") + b'"'
    if kind == "wrong type":
        return kind, draw(st.sampled_from([b'["x"]', b'{"a": "b"}', b"[]", b"{}", b"true", b"false", b"null",
                                           b"0", b"-1", b"1.5", b'""', b'[[["x"]]]', b'[{"x": 1}]']))
    if kind == "date":
        return kind, _json_text(draw(_BAD_DATES))
    if kind == "count":
        return kind, _json_text(draw(_COUNTS))
    if kind == "count as text":
        return kind, _json_text(str(draw(_COUNTS)))
    return kind, _json_text(draw(_DIGITS))


@st.composite
def text_values(draw: Any) -> tuple[str, bytes]:
    """(class, UTF-8 bytes, maybe invalid) for a query or path parameter, a form field or a header."""
    kind = draw(st.sampled_from(["deep", "huge integer", "surrogate", "wrong type", "date", "count",
                                 "other digits", "long"]))
    if kind == "deep":
        return kind, b"[" * draw(st.sampled_from([33, 1000, 5000]))
    if kind == "huge integer":
        return kind, draw(_HUGE).encode()
    if kind == "surrogate":
        return kind, draw(_SURROGATE).encode("utf-8", "surrogatepass")
    if kind == "wrong type":
        return kind, draw(st.sampled_from([b"[]", b"{}", b"null", b"true", b'["x"]', b""]))
    if kind == "date":
        return kind, draw(_BAD_DATES).encode()
    if kind == "count":
        return kind, str(draw(_COUNTS)).encode()
    if kind == "other digits":
        return kind, draw(_DIGITS).encode()
    return kind, b"a" * draw(st.sampled_from([300, 3000, 10_000]))


@st.composite
def header_values(draw: Any) -> tuple[str, bytes]:
    """(class, latin-1 bytes) for a credential header: what http.client can carry."""
    kind = draw(st.sampled_from(["non-ascii", "huge integer", "long"]))
    if kind == "non-ascii":
        return kind, draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                                exclude_categories=("Cc",)), max_size=30)).encode("latin-1")
    if kind == "huge integer":
        return kind, draw(_HUGE).encode()
    return kind, b"Bearer " + b"x" * draw(st.sampled_from([100, 5000]))


# -- the requests -------------------------------------------------------------------------------

@dataclass
class Place:
    """One place of a request a value can spoil."""

    where: str
    """``json``, ``import``, ``form-field``, ``form-json``, ``query``, ``path`` or ``header``."""
    name: str


@dataclass
class Target:
    """One documented operation, with what a valid call to it needs."""

    method: str
    path: str
    role: str | None
    token: str | None
    params: dict[str, str]
    json_fields: list[str] = field(default_factory=list)
    form_fields: list[str] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)


def _multipart(fields: list[tuple[str, bytes]], files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = b"fuzzb0undary7e1"
    parts = [b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (boundary, n.encode(), v)
             for n, v in fields]
    parts += [b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="f.pdf"\r\n'
              b"Content-Type: application/pdf\r\n\r\n%s\r\n" % (boundary, n.encode(), v) for n, v in files]
    return b"".join(parts) + b"--%s--\r\n" % boundary, f"multipart/form-data; boundary={boundary.decode()}"


def object_with(fields: dict[str, Any], spoil: str | None = None, value: bytes = b"") -> bytes:
    """A JSON object's text: `fields`, with field `spoil` (added if absent) set to the raw JSON text `value`."""
    pairs = [b"%s: %s" % (_json_text(k), value if k == spoil else _json_text(v)) for k, v in fields.items()]
    if spoil is not None and spoil not in fields:
        pairs.append(b"%s: %s" % (_json_text(spoil), value))
    return b"{" + b", ".join(pairs) + b"}"


@dataclass
class HostileFuzz:
    """Sends spoiled requests to one portal (or one system) and keeps what it found."""

    portal: PortalClient
    admin_token: str
    system: str = "portal"
    """``portal``, ``national``, ``provincial`` or ``city``: what the people and the dossier of a call are."""
    requests: int = 0
    answers: Counter = field(default_factory=Counter)
    classes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    good: dict[str, Any] = field(default_factory=dict)
    _imported: int = 0

    def _fixtures(self) -> tuple[dict[str, str], dict[str, str]]:
        """Fresh sessions by role and the path parameters of a dossier and a payment of their own."""
        if self.system == "city":
            return self._city_fixtures()
        tokens: dict[str, str] = {}
        params = {"code": "HT-02", "payment_id": "none"}
        if self.system in ("portal", "national"):
            tokens["citizen"] = citizen = self.portal.citizen("079111111188")
            _, dossier = self.portal.call("POST", "/api/dossiers", token=citizen, files=[
                ("procedure_code", "CT-01"), ("unit_code", str(U1)),
                ("form", json.dumps({"document_type": "x", "copies": "1"})),
                ("original_scan", ("o.pdf", b"%PDF", "application/pdf"))])
            _, pay = self.portal.call("POST", f"/api/dossiers/{dossier['id']}/payment", token=citizen)
            params.update(dossier_id=str(dossier["id"]), payment_id=pay["payment_id"])
        if self.system in ("portal", "provincial"):
            tokens["officer"] = self.portal.officer(U1)
        if self.system == "provincial":  # no citizens here: a dossier of its own comes by import
            self._imported += 1
            row = {**IMPORT_ROW, "id": 90_000_000 + self._imported, "code": f"H79-FUZZ-P{self._imported}"}
            status, _ = self.portal.call("POST", "/api/admin/import", {"items": [row]},
                                         headers={"X-Admin-Token": self.admin_token})
            assert status == 200
            params["dossier_id"] = str(row["id"])
        if self.system == "national":
            _, signed = self.portal.call("POST", "/api/dvcqg/auth", {"username": "hcmc", "password": "rehearsal"},
                                         headers={"X-Ma-Don-Vi": GOOD_SYSTEMS["madonvi"]})
            self.good["session"] = signed["session"]
        return tokens, params

    def _city_fixtures(self) -> tuple[dict[str, str], dict[str, str]]:
        _, signed = self.portal.call("POST", "/dichvucong/api/taikhoan/dangnhap",
                                     {"tenDangNhap": "079111111188", "matKhau": "rehearsal"})
        token = signed["duLieu"]["maPhien"]
        _, filed = self.portal.call("POST", "/dichvucong/api/hoso", headers={"X-Ma-Phien": token}, files=[
            ("maThuTuc", "CT-01"), ("maDonVi", str(U1)),
            ("thongTin", json.dumps({"document_type": "x", "copies": "1"})),
            ("original_scan", ("o.pdf", b"%PDF", "application/pdf"))])
        code = filed["duLieu"]["maHoSo"]
        _, pay = self.portal.call("POST", f"/dichvucong/api/hoso/{code}/thanhtoan", headers={"X-Ma-Phien": token})
        return {"citizen": token}, {"ma_ho_so": code, "ma_thu_tuc": "HT-02",
                                    "payment_id": pay["duLieu"]["maThanhToan"]}

    def target(self, path: str, method: str, op: dict[str, Any]) -> Target:
        """A valid call to the operation: fresh sessions, a dossier and a payment of its own."""
        tokens, params = self._fixtures()
        tag = op["tags"][0]
        role = "admin" if tag == "admin" else "officer" if tag == "officers" else \
            "citizen" if op.get("security") else None
        t = Target(method.upper(), path, role, tokens.get(role or ""), params)
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            t.json_fields = list(content["application/json"]["schema"].get("properties", {}))
            t.places += [Place("json", n) for n in t.json_fields]
        if "multipart/form-data" in content:
            t.form_fields = list(content["multipart/form-data"]["schema"].get("properties", {}))
            t.places += [Place("form-field", n) for n in t.form_fields]
            if path in FORM_FIELD:
                t.places += [Place("form-json", n) for n in DEATH_FORM]
        if path == "/api/admin/import":
            t.places += [Place("import", n) for n in IMPORT_ROW]
        t.places += [Place(p["in"], p["name"]) for p in op.get("parameters", [])]
        session = "X-Ma-Phien" if self.system == "city" else "Authorization"
        t.places.append(Place("header", "X-Admin-Token" if role == "admin" else session))
        return t

    def send(self, t: Target, place: Place, kind: str, value: bytes) -> None:
        """One spoiled request; a 5xx, or a 4xx that is not the portal's JSON, is a failure."""
        headers = ({"X-Ma-Phien": t.token} if self.system == "city" else {"Authorization": f"Bearer {t.token}"}) \
            if t.token else {}
        if t.role == "admin":
            headers["X-Admin-Token"] = self.admin_token
        path = t.path
        for name, good in t.params.items():
            spoilt = quote(value, safe="") if place.where == "path" and place.name == name else good
            path = path.replace("{" + name + "}", spoilt)
        if place.where == "query":
            path += f"?{place.name}={quote(value, safe='')}"
        body: bytes | None = None
        if t.json_fields or place.where == "import":
            good = {**GOOD, **GOOD_SYSTEMS, **self.good} if self.system != "portal" else GOOD
            if t.path == "/api/dvcqg/auth":
                good = {**good, "username": "hcmc", "password": "rehearsal"}
            base = {n: good[n] for n in t.json_fields if n in good}
            if place.where == "import":
                body = b'{"items": [' + object_with(IMPORT_ROW, place.name, value) + b"]}"
            else:
                body = object_with(base, place.name if place.where == "json" else None, value)
            headers["Content-Type"] = "application/json"
        elif t.form_fields:
            fields = [(n, str({**GOOD, **GOOD_SYSTEMS}.get(n, "{}")).encode()) for n in t.form_fields]
            if place.where == "form-field":
                fields = [(n, value if n == place.name else v) for n, v in fields]
            elif place.where == "form-json":
                form_field = FORM_FIELD.get(t.path, "form")
                fields = [(n, object_with(DEATH_FORM, place.name, value) if n == form_field else v) for n, v in fields]
            body, headers["Content-Type"] = _multipart(fields, [("death_notice", b"%PDF")])
        raw_headers = [(k, v.encode("latin-1")) for k, v in headers.items()
                       if place.where != "header" or k != place.name]
        if place.where == "header":
            raw_headers.append((place.name, value))
        if t.path.startswith("/api/dvcqg/auth") and not (place.where == "header" and place.name == "X-Ma-Don-Vi"):
            raw_headers.append(("X-Ma-Don-Vi", GOOD_SYSTEMS["madonvi"].encode()))
        status, answer = self._call(t.method, path, body, raw_headers)
        self.requests += 1
        self.answers[status // 100 * 100] += 1
        self.classes[kind] += 1
        what = f"{t.method} {t.path} {place.where}:{place.name} <- {kind} {value[:60]!r}"
        if status >= 500:
            self.failures.append(f"{status} {what}: {str(answer)[:200]}")
        elif status >= 400:
            shape, named = ({"maLoi", "thongDiep", "truong"}, "truong") if self.system == "city" else \
                ({"error", "field", "message"}, "field")
            if not isinstance(answer, dict) or not shape <= set(answer):
                self.failures.append(f"{status} not the portal's JSON error: {what}: {str(answer)[:200]}")
            elif status == 400 and place.where == "json" and kind in STRUCTURAL and \
                    not str(answer[named]).startswith(place.name):
                self.failures.append(f"{status} names {answer[named]!r}, not {place.name}: {what}")
        elif t.role == "admin":
            self._undo()

    def _call(self, method: str, path: str, body: bytes | None,
              headers: list[tuple[str, bytes]]) -> tuple[int, Any]:
        host, port = self.portal.base_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            status, raw = response.status, response.read()
        except (ConnectionError, http.client.HTTPException) as exc:
            return 599, f"the connection failed: {exc!r}"
        finally:
            conn.close()
        try:
            return status, json.loads(raw) if raw else raw
        except ValueError:
            return status, raw[:200]

    def _undo(self) -> None:
        """A fuzzed admin call that succeeded (a fault set, the door closed) is undone before the next request."""
        token = {"X-Admin-Token": self.admin_token}
        assert self.portal.call("POST", "/api/admin/reopen", {}, headers=token)[0] == 200
        assert self.portal.call("PUT", "/api/admin/faults", {"faults": []}, headers=token)[0] == 200
        if self.system == "provincial":  # a link killed by a fuzzed call is started again (409: there is none)
            assert self.portal.call("POST", "/api/admin/link", {"action": "start"}, headers=token)[0] in (200, 409)


def fuzz_every_operation(fuzz: HostileFuzz, examples: int) -> tuple[int, dict[str, Any]]:
    """Spoil every documented operation `examples` times (one place, one hostile value each): the operations
    fuzzed and the figures (requests, answers by class, value classes, 5xx)."""
    from hypothesis import HealthCheck, given, settings

    _, doc = fuzz.portal.call("GET", "/openapi.json")
    values = {"json": json_values(), "import": json_values(), "form-json": json_values(), "header": header_values()}
    operations = 0
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            operations += 1
            target = fuzz.target(path, method, op)

            @given(data=st.data())
            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
            def spoil(data: Any) -> None:
                place = data.draw(st.sampled_from(target.places))
                kind, value = data.draw(values.get(place.where, text_values()))
                fuzz.send(target, place, kind, value)

            spoil()
    return operations, {"operations": operations, "requests": fuzz.requests,
                        "answers": dict(sorted(fuzz.answers.items())), "classes": dict(sorted(fuzz.classes.items())),
                        "5xx": fuzz.answers[500]}
