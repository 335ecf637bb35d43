"""`CityPortal`: citizens on a city's (or a former province's) own portal, in its own shape (docs/city-portal-api.md).

The front door a one-stop system had before its cutover: paths under
``/dichvucong/api/``, Vietnamese field names, sign-in with the ID number
and a password (``tenDangNhap``, ``matKhau``), the session in header
``X-Ma-Phien``, answers ``{"maLoi": 0, "thongDiep", "duLieu"}`` and errors
``{"maLoi": n, "thongDiep", "truong"}``, dossiers addressed by their code.
The journey is the same as on the national portal (`NationalPortal` has the
same methods): this adapter only speaks the other shape, and translates
the procedure's form (``truongThongTin``, ``giayToKemTheo``) into the one
the journey fills. The citizens' password comes from the variable the run
names (``--city-password-env``), like the officers'.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

from typing import Any

from urllib3 import encode_multipart_formdata

from locustfiles.clients.base import Dossier, SystemClient

Files = list[tuple[str, Any]]


def _data(body: Any) -> Any:
    """The ``duLieu`` of a city answer that worked (``maLoi`` 0), else None."""
    if isinstance(body, dict) and body.get("maLoi") == 0:
        return body.get("duLieu")
    return None


class CityPortal(SystemClient):
    """A city portal's citizen API."""

    kind = "city"
    role = "citizen"

    def session_headers(self) -> dict[str, str]:
        return {"X-Ma-Phien": self.token} if self.token else {}

    def error_of(self, body: Any) -> str | None:
        if isinstance(body, dict) and body.get("maLoi"):
            field = body.get("truong")
            return f"{body.get('thongDiep', '')}" + (f" ({field})" if field else "")
        return None

    def sign_in(self, id_number: str) -> None:
        """Sign in with the ID number and the run's citizen password; the task is rescheduled if it fails."""
        status, body = self.request("POST", "/dichvucong/api/taikhoan/dangnhap", "/dichvucong/api/taikhoan/dangnhap",
                                    signed=False, json={"tenDangNhap": id_number,
                                                        "matKhau": self.user.ctx.city_password})
        data = _data(body)
        session = self.user.require(status, data, "maPhien")
        self.signed_in(session["maPhien"])

    def sign_out(self) -> None:
        if self.token:
            self.request("POST", "/dichvucong/api/taikhoan/dangxuat", "/dichvucong/api/taikhoan/dangxuat")
        self.token = None

    def search(self, word: str) -> None:
        self.request("GET", "/dichvucong/api/thutuc", "/dichvucong/api/thutuc?tuKhoa",
                     params={"tuKhoa": word, "trang": 1})

    def procedure(self, code: str) -> dict[str, Any]:
        """The procedure's form, in the journey's shape (``fields``, ``attachments``)."""
        status, body = self.request("GET", f"/dichvucong/api/thutuc/{code}", "/dichvucong/api/thutuc/[maThuTuc]")
        data = self.user.require(status, _data(body), "truongThongTin")
        return {"fields": [{"name": f.get("ma"), "type": f.get("kieu", "text"), "required": f.get("batBuoc", True),
                            "choices": f.get("luaChon") or []} for f in data.get("truongThongTin", [])],
                "attachments": [{"name": a.get("ma"), "required": a.get("batBuoc", True)}
                                for a in data.get("giayToKemTheo", [])]}

    def file(self, procedure_code: str, unit: int, form: str, files: Files, client_ref: str
             ) -> tuple[int, Dossier | None]:
        fields: Files = [("maThuTuc", procedure_code), ("maDonVi", str(unit)), ("maGiaoDich", client_ref),
                         ("thongTin", form), *files]
        body, content_type = encode_multipart_formdata(fields)
        status, answer = self.request("POST", "/dichvucong/api/hoso", "/dichvucong/api/hoso", data=body,
                                      headers={"Content-Type": content_type})
        data = _data(answer)
        if status in (200, 201) and isinstance(data, dict) and data.get("maHoSo"):
            code = str(data["maHoSo"])
            return status, Dossier(code=code, system=self.system, ref=code,
                                   payment_required=bool(data.get("canThanhToan")))
        return status, None

    def pay(self, dossier: Dossier) -> bool:
        status, body = self.request("POST", f"/dichvucong/api/hoso/{dossier.code}/thanhtoan",
                                    "/dichvucong/api/hoso/[maHoSo]/thanhtoan")
        data = _data(body)
        if status not in (200, 201) or not isinstance(data, dict) or not data.get("duongDan"):
            return False
        link = str(data["duongDan"])
        status, answer = self.request("GET", link if link.startswith("http") else self.url + link, "/pay/[id]",
                                      allow_redirects=True)
        return status == 200 and isinstance(answer, dict) and bool(answer.get("paid"))

    def look(self, dossier: Dossier) -> int | None:
        status, body = self.request("GET", f"/dichvucong/api/hoso/{dossier.code}", "/dichvucong/api/hoso/[maHoSo]")
        data = _data(body)
        return data.get("trangThai") if status == 200 and isinstance(data, dict) else None

    def supplement(self, dossier: Dossier, form: str, files: Files) -> bool:
        body, content_type = encode_multipart_formdata(files)
        status, _ = self.request("POST", f"/dichvucong/api/hoso/{dossier.code}/bosung",
                                 "/dichvucong/api/hoso/[maHoSo]/bosung", data=body,
                                 headers={"Content-Type": content_type}, expect=(409,))
        return status in (200, 201)

    def withdraw(self, dossier: Dossier, reason: str) -> tuple[bool, int | None]:
        status, body = self.request("POST", f"/dichvucong/api/hoso/{dossier.code}/rut",
                                    "/dichvucong/api/hoso/[maHoSo]/rut", json={"lyDo": reason}, expect=(409,))
        data = _data(body)
        if status in (200, 201):
            return True, data.get("trangThai") if isinstance(data, dict) else None
        return False, None
