"""The reference portal's own errors: what went wrong with a call, said as JSON naming the field.

A handler raises one of these and `create_app`'s one error handler answers it
with its status and ``{"error", "field", "message"}`` (`error_body`), the
shape docs/portal-api.md promises. The portal is a service of its own: this
tree is apart from the harness's (`rehearsal.errors`), and a harness talking
to the portal sees only the JSON. The tree::

    ApiError                  a 4xx answer: which field, and why
    ├── BadRequest            400 bad_request: the body is not what the call takes
    ├── MissingField          400 missing_field: a required field or attachment is absent
    ├── InvalidField          400 invalid_field: a value the portal cannot take
    │   └── FaultSpecError    400 invalid_field: a fault it cannot apply (field ``faults[i].name``)
    ├── Unauthorized          401 unauthorized: no session, an unknown one, or wrong credentials
    │   └── SessionExpired    401 session_expired: sign in again
    ├── PaymentFailed         402 payment_failed: the intermediary refused the payment
    ├── Forbidden             403 forbidden: not yours (wrong role, citizen, unit; admin only)
    ├── NotFound              404 not_found: no such dossier, procedure or payment
    ├── WrongState            409 wrong_state: not a step the dossier's status allows
    ├── Conflict              409 conflict: the key is taken by something else (a client_ref, an imported code)
    └── TooLarge              413 too_large: a body, an attachment or a dossier's attachments over their limit

    PortalStartError          the portal cannot start as asked (``python -m rehearsal.portal``: one line, exit 2)

Answers that are not errors of the call (a fault played, the closed door of
the cutover, Flask's and werkzeug's own 4xx/500, the server's own 400/414/431
for a request it cannot read) use the same `error_body`. A path parameter that
cannot be a dossier id is refused while routing (`rehearsal.portal.inputs.PathRefusal`
carries the `ApiError`).
"""

from __future__ import annotations


def error_body(error: str, message: str, field: str | None = None) -> dict[str, str | None]:
    """The JSON of every error answer: a code, the field it is about (or null), and why."""
    return {"error": error, "field": field, "message": message}


class ApiError(Exception):
    """A 4xx answer: which field, and why; each child fixes its status and error code."""

    status: int = 400
    error: str = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field

    def body(self) -> dict[str, str | None]:
        """The answer's JSON."""
        return error_body(self.error, self.message, self.field)


class BadRequest(ApiError):
    """The body is not what the call takes (not a JSON object, no list where one belongs)."""


class MissingField(ApiError):
    """A required field or attachment is absent."""

    error = "missing_field"


class InvalidField(ApiError):
    """A value the portal cannot take: malformed, unknown, out of range."""

    error = "invalid_field"


class FaultSpecError(InvalidField):
    """A fault the portal cannot apply; `field` is ``faults[i]`` or ``faults[i].name``."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}", field)


class Unauthorized(ApiError):
    """No session, an unknown or signed-out one, or wrong credentials."""

    status, error = 401, "unauthorized"


class SessionExpired(Unauthorized):
    """The session's time is up: sign in again."""

    error = "session_expired"


class PaymentFailed(ApiError):
    """The payment intermediary refused the payment."""

    status, error = 402, "payment_failed"


class Forbidden(ApiError):
    """Signed in, but not allowed: the wrong role, another citizen's dossier, another unit's, admin only."""

    status, error = 403, "forbidden"


class NotFound(ApiError):
    """No such dossier, procedure or payment."""

    status, error = 404, "not_found"


class WrongState(ApiError):
    """The dossier's status (or its place at the second agency) does not allow that step."""

    status, error = 409, "wrong_state"


class Conflict(ApiError):
    """The key names something else already: a ``client_ref`` sent before with another submission, a code taken."""

    status, error = 409, "conflict"


class TooLarge(ApiError):
    """A JSON body, an attachment, or a dossier's attachments together, over the portal's limit."""

    status, error = 413, "too_large"


class PortalStartError(Exception):
    """The portal cannot start as asked (an address it may not bind, a bad setting): one line for a person."""
