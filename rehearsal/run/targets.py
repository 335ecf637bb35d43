"""Targets: where a plan may send load, and the allowed-hosts check.

`config/targets.yaml` names the targets. ``reference`` is the embedded
reference portal the harness starts itself on loopback. Any other target has
a ``url`` whose host must be in ``allowed_hosts`` (loopback only by default);
a host that is not loopback also needs the user's explicit confirmation.
The check runs before any request is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from .. import CONFIG_DIR
from ..errors import TargetError
from ..shared.net import is_loopback

DEFAULT_PATH = CONFIG_DIR / "targets.yaml"


@dataclass(frozen=True)
class Target:
    """A portal to rehearse against."""

    name: str
    embedded: bool
    """True for the reference portal the harness starts itself."""
    url: str | None = None
    officer_password_env: str | None = None
    """Environment variable holding the officers' password (never the password itself)."""
    admin_token_env: str | None = None


def load_targets(path: Path = DEFAULT_PATH) -> tuple[dict[str, Target], tuple[str, ...]]:
    """The targets of `path` and its allowed hosts."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TargetError(f"{path}: cannot read the targets file: {exc}") from None
    allowed = tuple(str(h) for h in doc.get("allowed_hosts", ()))
    targets = {}
    for name, raw in (doc.get("targets") or {}).items():
        raw = raw or {}
        targets[name] = Target(name=name, embedded=bool(raw.get("embedded", False)), url=raw.get("url"),
                               officer_password_env=raw.get("officer_password_env"),
                               admin_token_env=raw.get("admin_token_env"))
    return targets, allowed


def check_url(url: str, allowed: tuple[str, ...], *, confirmed: bool = False) -> None:
    """Refuse a URL whose host is not allowed (TargetError), before any request."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise TargetError(f"target URL {url!r}: expected http(s)://host[:port]")
    if host not in {h.lower().strip("[]") for h in allowed}:
        raise TargetError(f"target host {host!r} is not in allowed_hosts of {DEFAULT_PATH.name} "
                          f"(allowed: {', '.join(allowed)}); refusing to send load")
    if not is_loopback(host) and not confirmed:
        raise TargetError(f"target host {host!r} is not loopback: pass --confirm-target to send load to it")


def resolve_target(name: str, *, url: str | None = None, confirmed: bool = False,
                   path: Path = DEFAULT_PATH) -> Target:
    """The named target, checked against the allowed hosts; `url` overrides its URL."""
    targets, allowed = load_targets(path)
    if name not in targets:
        raise TargetError(f"unknown target {name!r} (expected one of: {', '.join(sorted(targets))}; "
                          f"see {path})")
    target = targets[name]
    if url:
        target = Target(name=name, embedded=False, url=url, officer_password_env=target.officer_password_env,
                        admin_token_env=target.admin_token_env)
    if not target.embedded:
        if not target.url:
            raise TargetError(f"target {name!r} has no url in {path}")
        check_url(target.url, allowed, confirmed=confirmed)
    return target
