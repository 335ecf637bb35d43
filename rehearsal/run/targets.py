"""Targets: where a plan may send load, and the allowed-hosts check.

`config/targets.yaml` names the targets. ``reference`` is the embedded
reference systems the harness starts itself on loopback
(`rehearsal.run.reference`). Any other target names its systems —
``systems: {national: {url, adapter}, provincial: {url, adapter, name},
city: {url, adapter}}`` (the adapters of `locustfiles.clients`: national,
onestop, city, or ``module:Class``) — or, the older way, one ``url``: a
portal with both roles (the single reference portal, ``rehearse portal``).
Its ``accounts`` name the files of officer usernames per unit and citizen
test identities (CSV), its ``*_password_env`` the environment variables
holding the passwords (never the passwords). Every URL's host must be in
``allowed_hosts`` (loopback only by default);
a host that is not loopback must also be confirmed by name
(``--confirm-target HOST``, exactly the URL's host: a typo in the URL cannot
then be confirmed by habit). URLs are read by the one strict parser
(`rehearsal.shared.net.parse_base_url`) and handed on normalised. The check
runs before any request is sent: here for the command line and the runner,
and again in every Locust process (`AllowedHosts`, used by the locustfile
for ``--host``, the national portal and a cutover's ``X-Portal-Moved``).
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from .. import CONFIG_DIR
from ..errors import RunError, TargetError
from ..plan.notation import did_you_mean
from ..shared.net import UrlError, host_key, is_loopback, parse_base_url, urlopen
from .systems import SystemEntry, Systems, integration_pairs

__all__ = ["AllowedHosts", "Target", "check_url", "is_loopback", "load_allowed_hosts", "load_targets",
           "reach_systems", "resolve_target"]

DEFAULT_PATH = CONFIG_DIR / "targets.yaml"
#: How long a run waits for a target (not the embedded portal) to answer before it gives up.
ANSWER_WAIT_S = 10.0


@dataclass(frozen=True)
class Target:
    """A portal to rehearse against."""

    name: str
    embedded: bool
    """True for the reference portal the harness starts itself."""
    url: str | None = None
    """Normalised (`rehearsal.shared.net.BaseUrl`) once `resolve_target` has checked it."""
    officer_password_env: str | None = None
    """Environment variable holding the officers' password (never the password itself)."""
    admin_token_env: str | None = None
    national_url: str | None = None
    """For a cutover on real portals (``--national-url``): the portal it moves to, checked like `url`."""
    confirmed: tuple[str, ...] = ()
    """The hosts the user confirmed (``--confirm-target``), passed on to the Locust processes."""
    systems: tuple[tuple[str, str, str | None], ...] = ()
    """(role, url, adapter) of each system it names (role: national, provincial, city); empty: ``url`` alone."""
    provincial_name: str = "hcmc"
    """The name of its provincial system (the ledger's and the time series' name for it)."""
    accounts: tuple[tuple[str, str], ...] = ()
    """(kind, CSV path) of its accounts files: ``officers`` (unit,username lines), ``citizens`` (ID numbers)."""
    city_password_env: str | None = None
    """Environment variable holding the citizens' password on the city portal."""
    integration: tuple[tuple[str, str], ...] = ()
    """The national portal's integration account reconciliation uses (``systems.national.integration``)."""

    def system_url(self, role: str) -> str | None:
        return next((url for r, url, _ in self.systems if r == role), None)


@dataclass(frozen=True)
class AllowedHosts:
    """The allowed list of a targets file, with the hosts the user confirmed: where load may go."""

    hosts: tuple[str, ...]
    confirmed: tuple[str, ...] = ()
    source: Path = DEFAULT_PATH

    def permits(self, host: str) -> bool:
        """Whether requests may go to `host`: on the list, and loopback or confirmed."""
        key = host_key(host)
        return key in {host_key(h) for h in self.hosts} and (is_loopback(key) or key in self.confirmed)

    def check(self, url: str, *, what: str = "target URL") -> str:
        """`url` normalised, or `TargetError` (one line naming `what`) if load may not go there."""
        try:
            base = parse_base_url(url)
        except UrlError as exc:
            raise TargetError(f"{what} {url!r}: {exc}; refusing it") from None
        if host_key(base.host) not in {host_key(h) for h in self.hosts}:
            raise TargetError(f"target host {base.host!r} ({what}) is not in allowed_hosts of {self.source.name} "
                              f"(allowed: {', '.join(self.hosts)}); refusing to send load")
        if not self.permits(base.host):
            raise TargetError(f"target host {base.host!r} ({what}) is not loopback: confirm it with "
                              f"--confirm-target {base.host} to send load to it")
        return str(base)


def _read(path: Path) -> dict:  # type: ignore[type-arg]
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TargetError(f"{path}: cannot read the targets file: {exc}") from None
    if not isinstance(doc, dict):
        raise TargetError(f"{path}: expected a mapping with allowed_hosts and targets")
    return doc


#: The systems a target may name.
SYSTEM_ROLES = ("national", "provincial", "city")
#: The keys each system of a target may have.
SYSTEM_KEYS = {"national": ("url", "adapter", "integration"), "provincial": ("url", "adapter", "name"),
               "city": ("url", "adapter")}
#: The keys a target may have.
TARGET_KEYS = ("embedded", "url", "systems", "accounts", "officer_password_env", "city_password_env",
               "admin_token_env")


def _known_keys(raw: dict, known: tuple[str, ...], where: str) -> None:  # type: ignore[type-arg]
    """`TargetError` for the first key of `raw` not in `known`, with the nearest known one."""
    for key in raw:
        if key not in known:
            raise TargetError(f"{where}: unknown key {key!r} ({did_you_mean(str(key), known)})")


def _systems(name: str, raw: object, path: Path) -> tuple[tuple[tuple[str, str, str | None], ...], str]:
    """A target's ``systems`` mapping, checked for shape: ((role, url, adapter), …), provincial name."""
    if raw is None:
        return (), "hcmc"
    if not isinstance(raw, dict):
        raise TargetError(f"{path}: targets.{name}.systems: expected a mapping of {', '.join(SYSTEM_ROLES)}")
    out = []
    for role, spec in raw.items():
        where = f"{path}: targets.{name}.systems.{role}"
        if role not in SYSTEM_ROLES:
            raise TargetError(f"{where}: unknown system (expected one of {', '.join(SYSTEM_ROLES)})")
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            raise TargetError(f"{where}: expected {{url: …, adapter: …}}")
        _known_keys(spec, SYSTEM_KEYS[role], where)
        adapter = spec.get("adapter")
        out.append((str(role), spec["url"], str(adapter) if adapter else None))
    roles = {r for r, _, _ in out}
    if not {"national", "provincial"} <= roles:
        raise TargetError(f"{path}: targets.{name}.systems: needs national and provincial (city is optional)")
    provincial = raw["provincial"].get("name") or "hcmc"
    return tuple(out), str(provincial)


def load_targets(path: Path = DEFAULT_PATH) -> tuple[dict[str, Target], tuple[str, ...]]:
    """The targets of `path` and its allowed hosts."""
    doc = _read(path)
    allowed = tuple(str(h) for h in doc.get("allowed_hosts") or ())
    targets = {}
    for name, raw in (doc.get("targets") or {}).items():
        if not isinstance(raw, dict):
            raise TargetError(f"{path}: targets.{name}: expected a mapping with url or systems")
        _known_keys(raw, TARGET_KEYS, f"{path}: targets.{name}")
        systems, provincial = _systems(str(name), raw.get("systems"), Path(path))
        national = (raw.get("systems") or {}).get("national") or {}
        try:
            integration = integration_pairs(national.get("integration"), f"{path}: targets.{name}.systems.national")
        except RunError as exc:
            raise TargetError(str(exc)) from None
        accounts = raw.get("accounts") or {}
        if not isinstance(accounts, dict) or not set(accounts) <= {"officers", "citizens"}:
            raise TargetError(f"{path}: targets.{name}.accounts: expected {{officers: CSV, citizens: CSV}}")
        targets[str(name)] = Target(name=str(name), embedded=bool(raw.get("embedded", False)), url=raw.get("url"),
                                    officer_password_env=raw.get("officer_password_env"),
                                    admin_token_env=raw.get("admin_token_env"), systems=systems,
                                    provincial_name=provincial,
                                    accounts=tuple((str(k), str(v)) for k, v in accounts.items()),
                                    city_password_env=raw.get("city_password_env"), integration=integration)
    return targets, allowed


def load_allowed_hosts(confirmed: Iterable[str] = (), path: Path = DEFAULT_PATH) -> AllowedHosts:
    """The allowed list of `path`, with these confirmed hosts."""
    return AllowedHosts(load_targets(path)[1], tuple(host_key(c) for c in confirmed if c.strip()), Path(path))


def check_url(url: str, allowed: tuple[str, ...], *, confirmed: Iterable[str] = ()) -> str:
    """`url` normalised if its host is allowed (and confirmed when not loopback); `TargetError` otherwise."""
    return AllowedHosts(tuple(allowed), tuple(host_key(c) for c in confirmed)).check(url)


def resolve_target(name: str, *, url: str | None = None, national_url: str | None = None,
                   confirmed: Iterable[str] = (), path: Path = DEFAULT_PATH) -> Target:
    """The named target, checked against the allowed hosts; `url` overrides its URL.

    `national_url` (a cutover's national portal) is checked the same way; a
    confirmed host that is neither is refused too (a confirmation must name
    what it confirms).
    """
    targets, _ = load_targets(path)
    if name not in targets:
        raise TargetError(f"unknown target {name!r} (expected one of: {', '.join(sorted(targets))}; "
                          f"see {path})")
    gate = load_allowed_hosts(confirmed, path)
    target = targets[name]
    if url is not None:  # given, even empty: then it is checked (and refused), never silently ignored
        target = replace(target, embedded=False, url=url, systems=())
    if national_url is not None and target.embedded:
        raise TargetError("--national-url is for a real target: on the embedded one the harness starts "
                          "both portals itself")
    hosts: set[str] = set()
    for kind, file in target.accounts:
        if not Path(file).is_file():
            raise TargetError(f"target {name!r}: accounts.{kind} {file}: no such file")
    if target.systems and not target.embedded:
        if national_url is not None:
            raise TargetError(f"--national-url is for a target with one url: {name!r} names its systems")
        checked = tuple((role, gate.check(url, what=f"systems.{role}.url"), adapter)
                        for role, url, adapter in target.systems)
        target = replace(target, systems=checked)
        target = replace(target, url=target.system_url("national"))
        hosts = {parse_base_url(u).host for _, u, _ in checked}
    elif not target.embedded:
        if target.url is None:
            raise TargetError(f"target {name!r} has no url in {path}")
        target = replace(target, url=gate.check(str(target.url)))
        if national_url is not None:
            target = replace(target, national_url=gate.check(national_url, what="--national-url"))
        hosts = {parse_base_url(u).host for u in (target.url, target.national_url) if u}
    for host in gate.confirmed:
        if host not in hosts:
            where = f"its hosts: {', '.join(sorted(hosts))}" if hosts else "the embedded portal needs none"
            raise TargetError(f"--confirm-target {host!r} confirms no host of this run ({where})")
    return replace(target, confirmed=gate.confirmed)


def await_answer(url: str, *, wait_s: float = ANSWER_WAIT_S) -> None:
    """Wait until the portal at `url` answers at all (any HTTP status); `TargetError` if it never does."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urlopen(url + "/api/health", timeout=max(0.5, min(5.0, deadline - time.monotonic()))):
                return
        except urllib.error.HTTPError:
            return  # an error status is an answer: the portal is there
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            why = getattr(reason, "strerror", None) or str(reason)
        if time.monotonic() >= deadline:
            raise TargetError(f"the target never answered: {url} ({why} for {wait_s:.0f} s; is the portal "
                              f"running? check --target-url), so nothing was rehearsed")
        time.sleep(0.5)


def reach_systems(target: Target, national_url: str | None = None) -> Systems:
    """The systems a run on a real target talks to, checked and answering.

    Checked again here (the runner may be called from Python, not only from
    the command line) and waited for: a target that never answers ends the
    run before any load with one line (`await_answer`). A target with one
    ``url`` is one portal with both roles; with `national_url` too (a cutover
    between two such portals) the ``url`` is the legacy one, named ``city``.
    """
    gate = load_allowed_hosts(target.confirmed)
    if target.systems:
        urls = {role: (gate.check(url, what=f"systems.{role}.url"), adapter) for role, url, adapter in target.systems}
        city = urls.get("city")
        systems = Systems([
            SystemEntry("national", "national", urls["national"][0], adapter=urls["national"][1],
                        integration=target.integration),
            SystemEntry(target.provincial_name, "provincial", urls["provincial"][0], adapter=urls["provincial"][1],
                        front_door_url=city[0] if city else None, front_door="city" if city else None,
                        front_door_adapter=city[1] if city else None)])
    else:
        legacy = gate.check(str(target.url))
        if national_url:
            national = gate.check(national_url, what="--national-url")
            systems = Systems([SystemEntry("national", "portal", national), SystemEntry("city", "portal", legacy)])
        else:
            systems = Systems.single(legacy)
    for entry in systems.entries.values():
        for url in (entry.url, entry.front_door_url):
            if url:
                await_answer(url)
    return systems
