"""Reading what a client sends: the one input layer every route of the portal goes through.

A class of bad input is refused here once, for every route, as a 4xx naming
its field, never as a 500 from somewhere deeper (SQLite, the JSON encoder,
`hmac`):

- JSON bodies (`json_object`, `read_json`): a size limit answered 413 before
  anything is read (`PortalSettings.max_json_bytes`; the admin import has its
  own), then one parse (`parse_json`) that refuses nesting deeper than
  `MAX_DEPTH`, numbers SQLite cannot hold (beyond 64 bits, NaN, infinities)
  and lone UTF-16 surrogates in any key or string (they cannot be stored or
  answered as UTF-8), each named by its place: ``items[3].status``;
- values of the expected JSON type (`text`, `whole`): text where text is
  expected, whole numbers within bounds;
- query strings (`query_int`, `query_text`): ASCII digits only (Python's
  `int` also takes ``"١٢"``, ``" 7 "`` and ``"1_0"``), within 64 bits;
- path ids (`DossierIdConverter`, the app's ``int`` converter: every whole
  number in the portal's paths is a dossier id): ASCII digits within 64
  bits, refused while routing (`PathRefusal`, a 404 naming ``dossier_id``);
- personal ID numbers (`ID_NUMBER`): exactly 12 ASCII digits and nothing
  after: ``\\d`` takes any script's digits and ``$`` a final newline, and
  each let one person sign in as several citizens;
- secrets compared as bytes (`same_secret`): `hmac.compare_digest` raises on
  non-ASCII text.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from typing import Any, Literal, overload

from flask import current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from .errors import ApiError, BadRequest, InvalidField, MissingField, NotFound, TooLarge

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Deepest nesting a JSON body may have (an import row is 4 levels deep).
MAX_DEPTH = 32
#: Longest free text a field takes (a name, a reason).
MAX_TEXT = 500
#: A personal ID number (CCCD): exactly 12 ASCII digits; use with ``fullmatch``.
ID_NUMBER = re.compile(r"[0-9]{12}")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_KINDS = {str: "text", int: "a number", float: "a number", bool: "true or false", list: "a list",
               dict: "an object", type(None): "null"}


def shown(value: str, limit: int = 60) -> str:
    """`value` safe to quote in an answer: cut to `limit` characters, surrogates written as ``\\udXXX``."""
    value = value if len(value) <= limit else value[:limit] + "…"
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def kind(value: Any) -> str:
    """What a JSON value is, in words (for "expected text, found a list")."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two texts, whatever characters they hold."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


# -- JSON --------------------------------------------------------------------------

class _Unfit:
    """A JSON number the portal cannot hold (beyond 64 bits, NaN, an infinity), kept so its place can be named."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_int(text: str) -> int | _Unfit:
    # Never int() on thousands of digits: Python refuses more than 4,300 and SQLite more than 64 bits.
    if len(text) > 20:
        return _Unfit(text)
    n = int(text)
    return n if INT64_MIN <= n <= INT64_MAX else _Unfit(text)


def _parse_float(text: str) -> float | _Unfit:
    value = float(text)
    return value if math.isfinite(value) else _Unfit(text)


def _place(where: str | None, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where or ''}[{key}]"
    key = shown(key, 40)
    return f"{where}.{key}" if where else key


def _check_tree(value: Any, where: str | None) -> None:
    """Refuse what no handler can take, anywhere in a parsed body (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Any, str | None, int]] = [(value, where, 0)]
    while stack:
        item, at, depth = stack.pop()
        if isinstance(item, _Unfit):
            raise InvalidField(f"number out of range: {shown(item.text, 24)} (whole numbers fit in 64 bits; "
                               "no NaN or infinity)", at)
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidField("text with a lone UTF-16 surrogate (\\ud800-\\udfff) is not Unicode text", at)
        elif isinstance(item, (list, dict)):
            if depth >= MAX_DEPTH:
                raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels", at)
            pairs = enumerate(item) if isinstance(item, list) else item.items()
            for key, child in pairs:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise InvalidField("a key with a lone UTF-16 surrogate is not Unicode text", _place(at, key))
                stack.append((child, _place(at, key), depth + 1))


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def _too_deep_at(raw: bytes | str, where: str | None) -> str | None:
    """Where JSON text first nests deeper than `MAX_DEPTH` (the place `_check_tree` would name), from its tokens.

    Only for text the parser gave up on (its recursion limit): the scan stops
    at the first place too deep, so it reads little more than that.
    """
    doc = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    path: list[list[Any]] = []  # per open container: [bracket, current key or index]
    last = ""
    for token in _TOKEN.finditer(doc):
        t = token.group()
        if t[0] == '"':
            last = t
        elif t in "[{":
            if len(path) >= MAX_DEPTH:
                at = where
                for _, key in path:
                    at = _place(at, key)
                return at
            path.append([t, 0 if t == "[" else ""])
        elif t in "]}":
            if path:
                path.pop()
        elif path and t == "," and path[-1][0] == "[":
            path[-1][1] += 1
        elif path and t == ":" and path[-1][0] == "{":
            try:
                path[-1][1] = str(json.loads(last))
            except ValueError:
                path[-1][1] = last.strip('"')
    return None


def parse_json(raw: bytes | str, where: str | None = None) -> Any:
    """JSON text as Python values, refused (naming `where` and the place inside) if no handler could take it."""
    try:
        value = json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_Unfit)
    except RecursionError:  # the C parser stops at the interpreter's recursion limit, long before 100,000 levels
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels", _too_deep_at(raw, where) or where) from None
    except ValueError as exc:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        raise BadRequest(f"not valid JSON: {shown(str(exc), 120)}", where) from None
    _check_tree(value, where)
    return value


def read_json(limit: int | None = None, *, optional: bool = False) -> Any:
    """The call's JSON body: 413 over `limit` bytes (default: the portal's JSON limit) before reading it."""
    limit = limit or current_app.config["PORTAL"].max_json_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"a JSON body here is at most {limit} bytes", None)
    chunks, size = [], 0
    while size <= limit:  # a chunked body has no length to check first: read one byte past the limit at most
        chunk = request.stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise TooLarge(f"a JSON body here is at most {limit} bytes", None)
    raw = b"".join(chunks)
    if not raw.strip() and optional:
        return None
    if not request.is_json:
        raise BadRequest("expected a JSON object body (Content-Type: application/json)", None)
    return parse_json(raw)


def json_object(*required: str, limit: int | None = None, optional: bool = False) -> dict[str, Any]:
    """The call's JSON object body, with `required` fields present and not empty (``{}`` if optional and absent)."""
    body = read_json(limit, optional=optional)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object body, found {kind(body)}", None)
    for name in required:
        if body.get(name) is None or body.get(name) == "":
            raise MissingField(f"{name} is required", name)
    return body


@overload
def text(body: dict[str, Any], name: str, *, required: Literal[True] = True, max_len: int = MAX_TEXT,
         where: str | None = None) -> str: ...
@overload
def text(body: dict[str, Any], name: str, *, required: Literal[False], max_len: int = MAX_TEXT,
         where: str | None = None) -> str | None: ...
def text(body: dict[str, Any], name: str, *, required: bool = True, max_len: int = MAX_TEXT,
         where: str | None = None) -> str | None:
    """Field `name` of `body` as text of at most `max_len` characters (None if absent and not required)."""
    at = where or name
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise MissingField(f"{name} is required", at)
        return None
    if not isinstance(value, str):
        raise InvalidField(f"expected text, found {kind(value)}", at)
    if len(value) > max_len:
        raise InvalidField(f"at most {max_len} characters", at)
    return value


def whole(value: Any, where: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    """`value` as a whole number from `lo` to `hi` (a JSON integer, not true/false)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(f"expected a whole number, found {kind(value)}", where)
    if not lo <= value <= hi:
        raise InvalidField(f"expected a whole number from {lo} to {hi}", where)
    return value


def whole_text(value: str, where: str) -> int:
    """Text of ASCII digits (optionally signed) as a 64-bit whole number."""
    if not _INTEGER.fullmatch(value) or not INT64_MIN <= int(value) <= INT64_MAX:
        raise InvalidField(f"expected a whole number in ASCII digits below 2^63, found {shown(value, 24)!r}", where)
    return int(value)


# -- query strings and paths -------------------------------------------------------

def query_int(name: str, default: int, lo: int, hi: int) -> int:
    """Query parameter `name` as a whole number (ASCII digits, 64 bits), brought within `lo`..`hi`."""
    raw = request.args.get(name)
    if raw is None:
        return default
    return min(hi, max(lo, whole_text(raw, name)))


def query_text(name: str, max_len: int = 200) -> str:
    """Query parameter `name` as text of at most `max_len` characters (empty if absent)."""
    raw = request.args.get(name, "")
    if len(raw) > max_len:
        raise InvalidField(f"at most {max_len} characters", name)
    return raw


class PathRefusal(HTTPException):
    """A path parameter refused while the URL is routed (werkzeug lets only an HTTPException out of a converter).

    The app answers it with the `ApiError` it carries, like any other.
    """

    code = 404

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


class DossierIdConverter(BaseConverter):
    """``<int:dossier_id>`` in the portal: ASCII digits within 64 bits (werkzeug's own takes ``١٢٣``).

    It replaces werkzeug's ``int`` rather than taking a name of its own, so
    route names (what faults match and the live view counts) stay as they were.
    """

    regex = r"[^/]+"

    def to_python(self, value: str) -> int:
        if not re.fullmatch(r"[0-9]{1,19}", value) or int(value) > INT64_MAX:
            raise PathRefusal(NotFound(f"no dossier {shown(value, 24)!r}: a dossier id is a whole number "
                                       "in ASCII digits below 2^63", "dossier_id"))
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))
