"""Addresses: the one reader of portal URLs and host:port pairs, the loopback rule, and opening a URL without redirects.

Every part of the harness that sends a request reads its address here, so
that what the allowed-hosts check sees is what the request uses: the
standard library's parsers disagree on hostile input
(``http://192.0.2.10\\@127.0.0.1:8000/``: `urllib.parse.urlsplit` reads the host
127.0.0.1, `urllib.request` connects to ``192.0.2.10\\``). `parse_base_url`
does not guess: a base URL is ``http(s)://host[:port]`` with an optional
final ``/``, and anything a second parser could read differently (user
info, backslashes, whitespace or control characters, percent-encoding,
non-ASCII names, numeric host spellings other than the dotted quad, paths,
queries, fragments) is refused with a `UrlError` that says which. What it
returns is normalised (lowercase scheme and host, the port always written),
and that string is what every consumer is handed. `urlopen` is
`urllib.request.urlopen` that follows no redirect: a portal's answer cannot
send the harness, or the admin token it carries, anywhere else.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_PORTS = {"http": 80, "https": 443}
#: One DNS label: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class UrlError(ValueError):
    """An address that is refused; the message says why, without the address (the caller names it)."""


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` and ``::1`` (bracketed or not); any other name or address is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_key(host: str) -> str:
    """A host as the allowed list compares it: lowercase, an IPv6 address without its brackets."""
    return host.strip().lower().strip("[]")


def _check_text(text: str) -> None:
    if not text:
        raise UrlError("empty")
    for ch in text:
        if ch.isspace() or not ch.isprintable():
            raise UrlError(f"whitespace or a control character ({ch!r}) is not allowed")
        if not ch.isascii():
            raise UrlError("non-ASCII characters are not allowed (write an internationalised name in its "
                           "xn-- form, exactly as on allowed_hosts)")
    if "\\" in text:
        raise UrlError("a backslash is not allowed")
    if "@" in text:
        raise UrlError("user info ('…@') is not allowed")
    if "%" in text:
        raise UrlError("'%' is not allowed (no percent-encoding, no IPv6 zone)")


def _host(text: str) -> str:
    """The host part, checked and normalised (IPv6 without brackets)."""
    if text.startswith("["):
        if not text.endswith("]"):
            raise UrlError("an IPv6 address needs its closing ']'")
        try:
            return str(ipaddress.IPv6Address(text[1:-1]))
        except ValueError:
            raise UrlError(f"{text} is not an IPv6 address") from None
    host = text.lower()
    if not host:
        raise UrlError("no host")
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        # Only the dotted quad: 2130706433, 127.1 and 0177.0.0.1 all connect to 127.0.0.1.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise UrlError(f"{text!r} is not an IPv4 address (write all four parts, in decimal)") from None
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise UrlError(f"{text!r} is not a host name (letters, digits, '-' and '.' only)")
    if not labels[-1][0].isalpha():
        # The C resolver reads 0x7f.1 or 127.0.0.01 as a number: a name ends in a label that starts with a letter.
        raise UrlError(f"{text!r} is neither a host name nor an IPv4 address")
    return host


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UrlError(f"port {text!r}: expected a number from 1 to 65535")
    return int(text)


def parse_address(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """``HOST[:PORT]`` (an IPv6 address in brackets) as (host, port); the port is required without a default."""
    _check_text(text)
    if "/" in text or "?" in text or "#" in text:
        raise UrlError("expected HOST:PORT, not a URL")
    if text.startswith("["):
        host, bracket, rest = text.partition("]")
        if not bracket:
            raise UrlError("an IPv6 address needs its closing ']'")
        host += "]"
        if rest and not rest.startswith(":"):
            raise UrlError("expected [IPv6]:PORT")
        port = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise UrlError("write an IPv6 address in brackets: [::1]:5557")
    else:
        host, colon, port_text = text.partition(":")
        port = port_text if colon else None
    if port is None:
        if default_port is None:
            raise UrlError("no port (expected HOST:PORT)")
        return _host(host), default_port
    return _host(host), _port(port)


@dataclass(frozen=True)
class BaseUrl:
    """A portal's base address: scheme, host (lowercase; IPv6 without brackets) and port."""

    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def parse_base_url(text: str) -> BaseUrl:
    """``http(s)://host[:port][/]`` read strictly (see the module's docstring); `UrlError` otherwise."""
    if not isinstance(text, str):
        raise UrlError("expected text")
    _check_text(text)
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise UrlError("expected http(s)://host[:port]")
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlError(f"scheme {scheme!r}: expected http(s)://host[:port]")
    authority, tail = re.match(r"([^/?#]*)(.*)", rest).groups()  # type: ignore[union-attr]
    if tail not in ("", "/"):
        raise UrlError("a base URL has no path, query or fragment (expected http(s)://host[:port])")
    if not authority:
        raise UrlError("no host (expected http(s)://host[:port])")
    host, port = parse_address(authority, default_port=DEFAULT_PORTS[scheme])
    return BaseUrl(scheme=scheme, host=host, port=port)


_OPENER: Any = None


def urlopen(request: Any, *, timeout: float) -> Any:
    """`urllib.request.urlopen` that follows no redirect (a 3xx raises `urllib.error.HTTPError`)."""
    global _OPENER
    if _OPENER is None:
        # Imported here, not at the top: the portal imports this module before gevent patches ssl and
        # sockets, and needs only `is_loopback` from it.
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None  # the 3xx comes back as an HTTPError: an answer, not a place to go

        _OPENER = urllib.request.build_opener(NoRedirect)
    return _OPENER.open(request, timeout=timeout)
