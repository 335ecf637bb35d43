"""The national portal's integration API on its own: sign-in, the one service endpoint, every answer's shape.

Answers are the national portal's style: HTTP 200 and ``error_code`` ("0"
ok, "-1" sign-in refused or a connection failure, "-2" no such dossier,
"-3" đã tồn tại, "-4" bad session, "-5" wrong unit code, "-6" invalid
data, "-9" no such service); only a body that cannot be read is an HTTP
4xx, carrying ``error_code`` and the portal's ``{"error", "field",
"message"}``. Times are ``yyyyMMddHHmmss`` in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PortalClient, start_portal, stop_portal
from hostile_fuzz import json_values, object_with
from twosystems import MA_DON_VI, SCALE, U1, Integration, vn_time

CODE_TIME = "20250701083000"


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory):
    p = start_portal(tmp_path_factory.mktemp("national"), "--system", "national", "--time-scale", SCALE)
    yield p
    stop_portal(p)


@pytest.fixture
def api(national: PortalClient) -> Integration:
    i = Integration(national)
    assert i.sign_in()["error_code"] == "0"
    return i


def _dossier(code: str, **change: Any) -> dict[str, Any]:
    d = {"MaHoSo": code, "MaTTHC": "DD-03", "TenTTHC": "Hòa giải tranh chấp đất đai", "ChuHoSo": "Lê Văn C",
         "SoGiayToChuHoSo": "079200000001", "LoaiDoiTuong": "1", "NgayTiepNhan": CODE_TIME, "NgayHenTra": "",
         "NgayTra": "", "TrangThaiHoSo": "1", "DonViXuLy": str(U1), "MaDonVi": MA_DON_VI, "KenhThucHien": "1",
         "TaiLieuNop": [{"TenGiayTo": "petition", "TenTepDinhKem": "don.pdf", "KichThuoc": 10, "MaHash": "a" * 64}],
         "DanhSachLePhi": []}
    d.update(change)
    return d


def _step(code: str, status: str, at: str, note: str = "", number: str = "") -> dict[str, Any]:
    return {"MaHoSo": code, "NguoiXuLy": "cb26506-1", "ChucDanh": "Chuyên viên", "ThoiDiemXuLy": at,
            "PhongBanXuLy": "Một cửa", "NoiDungXuLy": note, "TrangThai": status, "NgayBatDau": CODE_TIME,
            "NgayKetThucTheoQuyDinh": "20250708170000", **({"MaBuocXuLy": number} if number else {})}


@pytest.mark.parametrize("username, password, unit", [
    ("hcmc", "wrong", MA_DON_VI), ("nobody", "rehearsal", MA_DON_VI), ("hcmc", "rehearsal", "000.00.00.H99"),
    ("hcmc", "rehearsal", "")])
def test_a_sign_in_refused_is_error_code_minus_1(national: PortalClient, username: str, password: str,
                                                 unit: str) -> None:
    status, answer = national.call("POST", "/api/dvcqg/auth", {"username": username, "password": password},
                                   headers={"X-Ma-Don-Vi": unit} if unit else {})
    assert status == 200 and answer["error_code"] == "-1" and answer["message"] and "session" not in answer


@pytest.mark.parametrize("change, code, field", [
    ({"session": "made-up"}, "-4", "session"), ({"session": None}, "-4", "session"),
    ({"madonvi": "000.00.00.H02"}, "-5", "madonvi"), ({"service": "XoaHoSo"}, "-9", "service"),
    ({"service": ["TraCuuHoSo"]}, "-9", "service"), ({"data": 42}, "-6", "data.MaHoSo"),
])
def test_a_call_that_is_not_taken_names_why(api: Integration, change: dict, code: str, field: str) -> None:
    body = {"session": api.session, "madonvi": MA_DON_VI, "service": "TraCuuHoSo", "data": {"MaHoSo": "x"}, **change}
    status, answer = api.national.call("POST", "/api/dvcqg/service", body)
    assert status == 200 and answer["error_code"] == code and answer["field"] == field, answer
    if code == "-9":
        assert "XoaHoSo" in answer["message"] or "list" in answer["message"]


@pytest.mark.parametrize("raw, status", [(b"not json", 400), (b"[1, 2]", 400), (b"[" * 5000, 400),
                                         (b'{"data": ' + b"9" * 400 + b"}", 400), (b"{" + b" " * 70_000 + b"}", 413)])
def test_a_body_that_cannot_be_read_is_a_4xx_in_both_shapes(national: PortalClient, raw: bytes, status: int) -> None:
    req = urllib.request.Request(national.base_url + "/api/dvcqg/service", data=raw, method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    answer = json.loads(info.value.read())
    assert info.value.code == status and answer["error_code"] == "-6" and {"error", "field", "message"} <= set(answer)


def test_dong_bo_ho_so_mc_new_then_da_ton_tai_then_an_update(api: Integration) -> None:
    code = "H79.26506-250701-9000001"
    first = api.call("DongBoHoSoMC", [_dossier(code)], isUpdating="False")
    assert first["error_code"] == "0" and first["result"] == [{"MaHoSo": code, "error_code": "0",
                                                               "message": "Thêm mới thành công"}]
    again = api.call("DongBoHoSoMC", [_dossier(code)], isUpdating="False")
    assert again["error_code"] == "-3" and "đã tồn tại" in again["message"]
    assert again["result"][0]["error_code"] == "-3" and code in again["result"][0]["message"]
    update = api.call("DongBoHoSoMC", [_dossier(code, TrangThaiHoSo="9", NgayHenTra="20250710170000")],
                      isUpdating="True")
    assert update["error_code"] == "0"
    seen = api.look_up(code)[code]
    # The dates follow the update; the status only moves with steps (an update must not undo a later change).
    assert seen["NgayHenTra"] == "20250710170000" and seen["TrangThaiHoSo"] == "1" and seen["KenhThucHien"] == "1"
    assert seen["NgayTiepNhan"] == CODE_TIME and seen["ChuHoSo"] == "Lê Văn C"


def test_each_item_is_answered_and_the_good_ones_are_taken(api: Integration) -> None:
    good, bad = "H79.26506-250701-9000002", "H79.26506-250701-9000003"
    answer = api.call("DongBoHoSoMC", [_dossier(good), _dossier(bad, SoGiayToChuHoSo="٠٧٩٢٠٠٠٠٠٠٠١"),
                                       _dossier(bad, TrangThaiHoSo="11"), _dossier(bad, NgayHenTra="20251399")],
                      isUpdating="False")
    assert answer["error_code"] == "-6"
    assert [r["error_code"] for r in answer["result"]] == ["0", "-6", "-6", "-6"]
    assert [r.get("field") for r in answer["result"][1:]] == ["data[1].SoGiayToChuHoSo", "data[2].TrangThaiHoSo",
                                                              "data[3].NgayHenTra"]
    assert set(api.look_up(good, bad)) == {good}


def test_steps_are_stored_once_and_the_newest_sets_the_status(api: Integration, national: PortalClient) -> None:
    code = "H79.26506-250701-9000004"
    assert api.call("DongBoHoSoMC", [_dossier(code)])["error_code"] == "0"
    unknown = api.call("CapNhatTienDoHoSoMC", [_step("H79-NOWHERE", "2", "20250701090000")])
    assert unknown["error_code"] == "-2" and "H79-NOWHERE" in unknown["message"]
    steps = [_step(code, "2", "20250701090000", "phiếu hẹn", "11"), _step(code, "4", "20250701100000", "", "12")]
    assert api.call("CapNhatTienDoHoSoMC", steps)["error_code"] == "0"
    again = api.call("CapNhatTienDoHoSoMC", steps)  # a duplicate push: taken, and changes nothing
    assert again["error_code"] == "0" and {r["message"] for r in again["result"]} == {"Đã có bước xử lý này"}
    # An older step arriving late is stored, but does not move the status back.
    assert api.call("CapNhatTienDoHoSoMC", [_step(code, "1", "20250701083500", "nộp", "10")])["error_code"] == "0"
    # Two steps in one second are ordered by the provincial system's own number (MaBuocXuLy).
    same_second = [_step(code, "9", "20250701110000", "approved", "14"), _step(code, "5", "20250701110000", "x", "13")]
    assert api.call("CapNhatTienDoHoSoMC", same_second)["error_code"] == "0"
    seen = api.look_up(code)[code]
    assert seen["TrangThaiHoSo"] == "9" and seen["NgayHenTra"] == "20250708170000"
    assert [s["MaBuocXuLy"] for s in seen["QuaTrinhXuLy"]] == ["10", "11", "12", "13", "14"]
    for s in seen["QuaTrinhXuLy"]:
        assert len(s["ThoiDiemDongBo"]) == 17 and abs(vn_time(s["ThoiDiemDongBo"]) - time.time()) < 120
    with sqlite3.connect(national.db_path) as db:
        assert db.execute("SELECT count(*) FROM synced_steps WHERE code = ?", (code,)).fetchone()[0] == 5


def test_look_up_takes_a_list_and_names_what_it_did_not_find(api: Integration) -> None:
    code = "H79.26506-250701-9000005"
    api.call("DongBoHoSoMC", [_dossier(code)])
    answer = api.call("TraCuuHoSo", {"MaHoSo": [code, "H79-MISSING"]})
    assert answer["error_code"] == "-2" and answer["missing"] == ["H79-MISSING"]
    assert [d["MaHoSo"] for d in answer["result"]] == [code]
    assert api.call("TraCuuHoSo", {"MaHoSo": code})["error_code"] == "0"
    too_many = api.call("TraCuuHoSo", {"MaHoSo": [f"c{i}" for i in range(101)]})
    assert too_many["error_code"] == "-6"


def test_the_feed_pages_by_seq(api: Integration, national: PortalClient) -> None:
    citizen = national.citizen("079200000009")
    for _ in range(3):
        national.call("POST", "/api/dossiers", token=citizen, files=[
            ("procedure_code", "CT-01"), ("unit_code", str(U1)), ("form", '{"document_type": "x", "copies": "1"}'),
            ("original_scan", ("o.pdf", b"%PDF", "application/pdf"))])
    whole = api.call("LayThayDoiHoSo", {"after": 0, "limit": 500})
    seqs = [i["seq"] for i in whole["result"]]
    assert seqs == sorted(seqs) and whole["last_seq"] == seqs[-1] and len(seqs) >= 3
    page = api.call("LayThayDoiHoSo", {"after": seqs[0], "limit": 1})
    assert [i["seq"] for i in page["result"]] == [seqs[1]]
    for bad in ({"after": -1}, {"limit": 501}, {"after": "1"}, []):
        assert api.call("LayThayDoiHoSo", bad)["error_code"] == "-6", bad


def test_link_and_vneid_faults_on_the_national_portal(api: Integration, national: PortalClient) -> None:
    def faults(*f: dict) -> None:
        assert national.call("PUT", "/api/admin/faults", {"faults": list(f)})[0] == 200

    try:
        faults({"kind": "link-errors", "rate": 1.0})
        status, answer = national.call("POST", "/api/dvcqg/service", {"session": api.session, "madonvi": MA_DON_VI,
                                                                      "service": "TraCuuHoSo", "data": {"MaHoSo": "x"}})
        assert (status, answer) == (200, {"error_code": "-1", "message": "Kết nối tới hệ thống thất bại"})
        faults({"kind": "link-down"})
        status, answer = national.call("POST", "/api/dvcqg/auth", {"username": "hcmc", "password": "rehearsal"})
        assert status == 503 and answer["error_code"] == "-1"
        assert national.call("GET", "/api/procedures")[0] == 200  # citizens are not touched
        faults({"kind": "link-slow", "delay_s": 0.4})
        t0 = time.monotonic()
        assert api.call("TraCuuHoSo", {"MaHoSo": "x"})["error_code"] == "-2"
        assert time.monotonic() - t0 >= 0.4
        faults({"kind": "vneid-overload", "rate": 1.0})
        status, answer = national.call("POST", "/api/auth/vneid/otp", {"id_number": "079200000010"})
        assert status == 503 and answer["message"] == "Kết nối tới hệ thống thất bại"
        faults({"kind": "link-down", "duration_s": 0.5})  # a window that ends by itself
        assert national.call("POST", "/api/dvcqg/auth", {})[0] == 503
        time.sleep(0.6)
        assert national.call("POST", "/api/dvcqg/auth", {})[0] == 200
        status, answer = national.call("PUT", "/api/admin/faults", {"faults": [{"kind": "link-kill"}]})
        assert status == 400 and answer["field"] == "faults[0].kind"  # a provincial system's fault
    finally:
        faults()
    assert national.citizen("079200000011")


def test_times_round_trip_in_asia_ho_chi_minh() -> None:
    from rehearsal.portal.records import dvcqg_time, dvcqg_time_ms, iso_of_dvcqg

    assert dvcqg_time("2025-06-30T17:00:00.000Z") == "20250701000000"  # midnight in Hồ Chí Minh City
    assert iso_of_dvcqg("20250701000000") == "2025-06-30T17:00:00.000Z"
    assert iso_of_dvcqg("20250701000000250") == "2025-06-30T17:00:00.250Z"
    assert dvcqg_time_ms(1751302800.25) == "20250701000000250"
    assert dvcqg_time(None) == "" and dvcqg_time("") == ""
    for bad in ("2025070100000", "20251301000000", "2025-07-01", "٢٠٢٥٠٧٠١٠٠٠٠٠٠"):
        with pytest.raises(ValueError):
            iso_of_dvcqg(bad)


def _hostile_items(api: Integration, service: str, item: dict[str, Any], answers: Counter) -> None:
    """Send `service` 60 times, one field of its item spoilt by a hostile value each time; count the answers."""
    host, port = api.national.base_url.removeprefix("http://").split(":")

    @given(name=st.sampled_from(sorted(item)), value=json_values())
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    def spoil(name: str, value: tuple[str, bytes]) -> None:
        spoilt = object_with(item, name, value[1])
        data = spoilt if service in ("TraCuuHoSo", "LayThayDoiHoSo") else b"[" + spoilt + b"]"
        envelope = json.dumps({"session": api.session, "madonvi": MA_DON_VI, "service": service}).encode()
        body = envelope[:-1] + b', "isUpdating": "True", "data": ' + data + b"}"
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", "/api/dvcqg/service", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            status, answer = response.status, json.loads(response.read())
        finally:
            conn.close()
        answers[status] += 1
        assert status < 500, (service, name, value, answer)
        assert "error_code" in answer, answer
        assert status == 200 or {"error", "field", "message"} <= set(answer), answer

    spoil()


def test_hostile_values_inside_each_services_data_find_no_5xx(api: Integration, record_property) -> None:
    """The hostile fuzz's values at every field of every service's items (the system fuzz spoils the envelope)."""
    items = {"DongBoHoSoMC": _dossier("H79.26506-250701-9000099"),
             "CapNhatTienDoHoSoMC": _step("H79.26506-250701-9000099", "2", "20250701090000", "x", "1"),
             "TraCuuHoSo": {"MaHoSo": "H79.26506-250701-9000099"}, "LayThayDoiHoSo": {"after": 0, "limit": 5}}
    answers: Counter = Counter()
    for service, item in items.items():
        _hostile_items(api, service, item, answers)
    print(f"hostile values in the services' data: {dict(answers)}")
    record_property("integration_hostile_answers", dict(answers))
    assert sum(answers.values()) >= 200
