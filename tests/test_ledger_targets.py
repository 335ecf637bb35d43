"""The ledger survives a torn write; targets refuse what is not allowed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rehearsal.errors import TargetError
from rehearsal.results.ledger import LedgerWriter, read_events
from rehearsal.run.targets import check_url, resolve_target


def test_ledger_round_trip_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger" / "s.jsonl"
    writer = LedgerWriter(path)
    writer.write([{"t": 1.0, "kind": "submitted", "id": 1}, {"t": 2.0, "kind": "received", "id": 1}])
    writer.write([{"t": 3.0, "kind": "returned", "id": 1, "note": "Đã trả kết quả"}])
    writer.close()
    # What a kill -9 in the middle of a write leaves behind:
    with path.open("a", encoding="utf-8") as f:
        f.write('{"t": 4.0, "kind": "subm')
    events = list(read_events(path))
    assert [e["kind"] for e in events] == ["submitted", "received", "returned"]
    assert events[2]["note"] == "Đã trả kết quả"
    assert writer.count == 3


def test_ledger_is_readable_while_being_written(tmp_path: Path) -> None:
    """Every write is flushed, so another process sees it without a close."""
    path = tmp_path / "l.jsonl"
    writer = LedgerWriter(path)
    writer.write([{"t": 1.0, "kind": "submitted", "id": 7}])
    assert json.loads(path.read_text().splitlines()[0])["id"] == 7
    writer.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:8080/"])
def test_loopback_is_allowed(url: str) -> None:
    check_url(url, ("127.0.0.1", "::1", "localhost"))


@pytest.mark.parametrize("url, normalised", [
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
    ("HTTP://LocalHost", "http://localhost:80"),
    ("https://localhost", "https://localhost:443"),
    ("http://[::1]:08080", "http://[::1]:8080"),
])
def test_an_allowed_url_is_handed_on_normalised(url: str, normalised: str) -> None:
    assert check_url(url, ("127.0.0.1", "::1", "localhost")) == normalised


@pytest.mark.parametrize("url, fragment", [
    ("http://10.0.0.5:8000", "not in allowed_hosts"),
    ("https://dichvucong.gov.vn", "not in allowed_hosts"),
    ("http://127.0.0.2:80", "not in allowed_hosts"),
    ("ftp://127.0.0.1/", "expected http(s)"),
    ("127.0.0.1:8000", "expected http(s)"),
    ("http://[::1]:8080/x", "no path"),
])
def test_other_hosts_are_refused(url: str, fragment: str) -> None:
    with pytest.raises(TargetError, match=re.escape(fragment)):
        check_url(url, ("127.0.0.1", "::1", "localhost"))


def test_allowed_but_not_loopback_needs_confirmation() -> None:
    allowed = ("127.0.0.1", "staging.example.vn")
    with pytest.raises(TargetError, match="--confirm-target"):
        check_url("https://staging.example.vn", allowed)
    check_url("https://staging.example.vn", allowed, confirmed=("staging.example.vn",))


def test_the_confirmation_must_name_the_host() -> None:
    """A typo in the URL is not confirmed by habit: the confirmation names exactly the URL's host."""
    allowed = ("127.0.0.1", "staging.example.vn", "stagng.example.vn")
    with pytest.raises(TargetError, match="--confirm-target stagng.example.vn"):
        check_url("https://stagng.example.vn", allowed, confirmed=("staging.example.vn",))
    assert check_url("https://Staging.Example.VN", allowed, confirmed=("STAGING.example.vn",)) \
        == "https://staging.example.vn:443"


def test_resolve_target_checks_both_portals_and_every_confirmation() -> None:
    target = resolve_target("local", url="http://LOCALHOST:8001/", national_url="http://127.0.0.1:8002")
    assert (target.url, target.national_url) == ("http://localhost:8001", "http://127.0.0.1:8002")
    with pytest.raises(TargetError, match=re.escape("'10.0.0.9' (--national-url) is not in allowed_hosts")):
        resolve_target("local", national_url="http://10.0.0.9:8000")
    with pytest.raises(TargetError, match="confirms no host of this run"):
        resolve_target("local", confirmed=["staging.example.vn"])
    with pytest.raises(TargetError, match="--national-url is for a real target"):
        resolve_target("reference", national_url="http://127.0.0.1:8002")
    assert resolve_target("local", confirmed=["127.0.0.1"]).confirmed == ("127.0.0.1",)


def test_unknown_target_names_the_choices() -> None:
    with pytest.raises(TargetError, match="expected one of: local, reference"):
        resolve_target("production")
    assert resolve_target("reference").embedded
    with pytest.raises(TargetError, match="not in allowed_hosts"):
        resolve_target("local", url="http://192.168.1.10:8000")
