"""The reference portal's OpenAPI 3 document, served at ``GET /openapi.json``, and the pieces the systems' use.

Written by hand next to the code (docs/portal-api.md is the prose of the same
contract) and checked against the running portal by two property-based fuzzes
(tests/test_openapi.py): schemathesis's generated input, and hostile input
(deep nesting, huge integers, lone surrogates, wrong JSON types, boundary
dates and counts) at every field of every documented operation. Each answers
without a 5xx and as documented here.
"""

from __future__ import annotations

from typing import Any

ERROR = {"type": "object", "required": ["error", "message"],
         "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]},
                        "message": {"type": "string"}, "moved_to": {"type": "string"}}}
_DOSSIER = {"type": "object", "required": ["id", "code", "status", "status_name", "unit_code", "procedure_code"],
            "properties": {"id": {"type": "integer"}, "code": {"type": "string"}, "status": {"type": "integer"},
                           "status_name": {"type": "string"}, "unit_code": {"type": "integer"},
                           "procedure_code": {"type": "string"}, "fee_vnd": {"type": "integer"},
                           "paid": {"type": "boolean"}, "lien_thong": {"type": "boolean"},
                           "agency_state": {"type": ["string", "null"]}, "history": {"type": "array"}}}
_ID_PARAM = {"name": "dossier_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON body of this schema."""
    return {"content": {"application/json": {"schema": schema}}}


def obj(*required: str, **props: Any) -> dict[str, Any]:
    """An object schema."""
    return {"type": "object", "required": list(required), "properties": props}


def op(summary: str, ok: dict[str, Any] | None = None, *, status: str = "200", body: dict[str, Any] | None = None,
       params: list[dict[str, Any]] | None = None, auth: bool = False, tag: str = "citizens",
       form: dict[str, Any] | None = None, body_required: bool = True, conflict: str | None = None,
       error: dict[str, Any] = ERROR, scheme: str = "bearer") -> dict[str, Any]:
    """One operation: its answer, the error answers (in `error`'s shape), its body or form, its parameters."""
    responses: dict[str, Any] = {status: {"description": "done", **json_content(ok or {"type": "object"})},
                                 "4XX": {"description": "bad input (400, 413, 414, 431), not allowed, or the wrong "
                                                        "step (409)", **json_content(error)},
                                 "503": {"description": "closed after a cutover, or a fault", **json_content(error)}}
    if conflict:
        responses["409"] = {"description": conflict, **json_content(error)}
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        out["requestBody"] = {"required": body_required, **json_content(body)}
    if form is not None:
        out["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": form}}}
    if params:
        out["parameters"] = params
    if auth:
        out["security"] = [{scheme: []}]
    return out


def _officer_action(summary: str, body: dict[str, Any] | None = None, *, body_required: bool = True,
                    conflict: str = "the dossier's status does not allow this step") -> dict[str, Any]:
    return {"post": op(summary, _DOSSIER, params=[_ID_PARAM], auth=True, tag="officers", body=body,
                        body_required=body_required, conflict=conflict)}


def spec() -> dict[str, Any]:
    """The single portal's document (`rehearsal.portal.openapi_systems` builds each system's from its paths)."""
    return document(portal_paths(), "dvc-rehearsal reference portal",
                    "The JSON API the harness speaks; see docs/portal-api.md.")


def document(paths: dict[str, Any], title: str, description: str,
             schemes: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI 3.1 document of these paths."""
    return {"openapi": "3.1.0", "info": {"title": title, "version": "1", "description": description},
            "components": {"securitySchemes": schemes or {"bearer": {"type": "http", "scheme": "bearer"}}},
            "paths": paths}


def portal_paths() -> dict[str, Any]:
    """Every path of the single portal of old (the systems take their own share of them)."""
    text = {"type": "string"}
    reason = obj(reason=text)
    paths: dict[str, Any] = {
        "/api/health": {"get": op("liveness and which face this is", obj("ok", "face", ok={"type": "boolean"},
                                                                           face=text), tag="view")},
        "/api/auth/vneid/otp": {"post": op("VNeID step 1: an OTP for a 12-digit ID number",
                                            obj("otp_request_id", "otp", otp_request_id=text, otp=text),
                                            body=obj("id_number", id_number=text), tag="auth")},
        "/api/auth/vneid/verify": {"post": op("VNeID step 2: the OTP gives a session token",
                                               obj("token", "role", token=text, role=text),
                                               body=obj("otp_request_id", "otp", otp_request_id=text, otp=text),
                                               tag="auth")},
        "/api/auth/officer": {"post": op("officer sign-in", obj("token", "role", "unit_code", token=text, role=text,
                                                                  unit_code={"type": "integer"}),
                                          body=obj("username", "password", username=text, password=text),
                                          tag="auth")},
        "/api/auth/logout": {"post": op("end the session", obj("ok"), auth=True, tag="auth")},
        "/api/procedures": {"get": op("catalogue, searched and paged", obj("total", "page", "items"),
                                       params=[{"name": "q", "in": "query", "schema": text},
                                               {"name": "page", "in": "query", "schema": {"type": "integer"}},
                                               {"name": "per_page", "in": "query", "schema": {"type": "integer"}}])},
        "/api/procedures/{code}": {"get": op("one procedure's form and attachments", obj("code", "fields"),
                                              params=[{"name": "code", "in": "path", "required": True,
                                                       "schema": text}])},
        "/api/dossiers": {
            "post": op("file a dossier (multipart: form fields as JSON, attachments as files)",
                        obj("id", "code", "status", id={"type": "integer"}, code=text, status={"type": "integer"}),
                        status="201", auth=True, conflict="client_ref sent before with another submission",
                        form=obj("procedure_code", "unit_code", procedure_code=text, unit_code=text,
                                  client_ref=text, form=text)),
            "get": op("my dossiers", obj("items", items={"type": "array", "items": _DOSSIER}), auth=True)},
        "/api/dossiers/{dossier_id}": {"get": op("one of my dossiers, with its history", _DOSSIER, params=[_ID_PARAM],
                                                  auth=True)},
        "/api/dossiers/{dossier_id}/payment": {"post": op("start paying the fee (the open payment, if one is)",
                                                           obj("payment_id", "redirect_url"), params=[_ID_PARAM],
                                                           auth=True, conflict="no fee due (status not 6)")},
        "/api/dossiers/{dossier_id}/supplement": {"post": op("answer a supplement request", _DOSSIER,
                                                              params=[_ID_PARAM], auth=True,
                                                              form=obj(form=text),
                                                              conflict="no supplement requested (status not 5)")},
        "/api/dossiers/{dossier_id}/withdraw": {"post": op(
            "ask to withdraw a dossier not decided yet (status 1, 2, 4, 5, 6 → 7)", _DOSSIER, params=[_ID_PARAM],
            auth=True, body=reason, body_required=False,
            conflict="decided, refused, or withdrawn already (status 3, 7, 8, 9, 10)")},
        "/pay/{payment_id}": {"get": {"summary": "the payment intermediary's page: 302 to the signed callback",
                                      "tags": ["citizens"],
                                      "parameters": [{"name": "payment_id", "in": "path", "required": True,
                                                      "schema": text}],
                                      "responses": {"302": {"description": "to /api/payments/callback"},
                                                    "4XX": {"description": "unknown payment", **json_content(ERROR)}}}},
        "/api/payments/callback": {"get": op("the intermediary's signed answer: the dossier is charged once",
                                              obj("dossier_id", "paid"),
                                              params=[{"name": n, "in": "query", "schema": text}
                                                      for n in ("payment_id", "result", "signature")],
                                              conflict="the dossier is not waiting for this fee")},
        "/api/officer/queue": {"get": op("my unit's queue, oldest first", obj("items"), auth=True, tag="officers",
                                          params=[{"name": "status", "in": "query", "schema": text},
                                                  {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                                                  {"name": "actionable", "in": "query", "schema": text}])},
        "/api/officer/dossiers/{dossier_id}/receive": _officer_action("receive (sets the due time)"),
        "/api/officer/dossiers/{dossier_id}/refuse-intake": _officer_action("refuse at intake", reason),
        "/api/officer/dossiers/{dossier_id}/process": _officer_action("start processing"),
        "/api/officer/dossiers/{dossier_id}/request-supplement": _officer_action("ask for a supplement", reason),
        "/api/officer/dossiers/{dossier_id}/transfer": _officer_action("hand to the second agency (liên thông)"),
        "/api/officer/dossiers/{dossier_id}/take-back": _officer_action("take back from the second agency"),
        "/api/officer/dossiers/{dossier_id}/decide": _officer_action(
            "approve or refuse", obj("decision", decision={"type": "string", "enum": ["approved", "refused"]},
                                      reason=text)),
        "/api/officer/dossiers/{dossier_id}/return": _officer_action("return the result"),
        "/api/officer/dossiers/{dossier_id}/stop": _officer_action(
            "stop processing a dossier whose withdrawal was asked (7 → 8)", reason, body_required=False,
            conflict="no withdrawal asked (status not 7)"),
        "/api/stats": {"get": op("the portal's own view: sessions, dossiers, request timings",
                                  obj("sessions_active", "dossiers_total", "requests"), tag="view")},
        "/metrics": {"get": {"summary": "Prometheus text format", "tags": ["view"],
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {"schema": text}}}}}},
        "/api/admin/dossiers": {"get": op("every dossier (reconciliation, migration)",
                                           obj("items", "next_after_id"), tag="admin", auth=False,
                                           params=[{"name": n, "in": "query", "schema": s} for n, s in
                                                   (("after_id", {"type": "integer"}), ("limit", {"type": "integer"}),
                                                    ("open", text), ("full", text))])},
        "/api/admin/faults": {"get": op("active faults and dropped ids", obj("faults", "dropped"), tag="admin"),
                              "put": op("replace the active faults", obj("faults"), tag="admin",
                                         body=obj("faults", faults={"type": "array", "items": {"type": "object"}}))},
        "/api/admin/close": {"post": op("close this (legacy) face", obj("closed"), tag="admin",
                                         body=obj("moved_to", mode={"type": "string", "enum": ["503", "redirect"]},
                                                   moved_to=text, retry_after_s={"type": "integer"}))},
        "/api/admin/reopen": {"post": op("undo close", obj("closed"), tag="admin")},
        "/api/admin/import": {"post": op("take dossiers exported by another face", obj("imported", "already"),
                                          tag="admin", body=obj("items", items={"type": "array",
                                                                                  "items": {"type": "object"}}))},
    }
    return paths
