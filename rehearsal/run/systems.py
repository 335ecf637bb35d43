"""The systems of a run (``systems.json``): who is where, which adapter speaks to each, where a user starts.

The runner writes ``systems.json`` into the run directory once the systems
answer (`Systems.write`); every Locust process reads it (``--systems``), and
so do the reconciliation and the report. Its shape::

    {"national": {"system": "national", "url": "http://127.0.0.1:41001"},
     "hcmc": {"system": "provincial", "url": "http://127.0.0.1:41002",
              "front_door_url": "http://127.0.0.1:41003", "front_door": "city"},
     "brvt": {"system": "provincial", "url": "…", "front_door_url": "…"}}

Optional keys: ``integration`` (the national portal's integration account
reconciliation signs in with: ``{username, ma_don_vi, password_env}``, the
password itself never: `rehearsal.results.national.NationalAccount`),
``front_door`` (the name citizens and the ledger know a front
door by; default the system's own name, so brvt's is ``brvt``; hcmc's is
``city``), ``adapter`` and ``front_door_adapter`` (`locustfiles.clients`:
``national``, ``city``, ``onestop`` or ``module:Class``; by default the
national portal's and a single portal's citizens use ``national``, front
doors ``city``, officers ``onestop``). A target with one ``url`` (the
single reference portal of old, or a staging portal with both roles) is
``{"portal": {"system": "portal", "url": …}}``: citizens and officers alike.

Where a user starts (`Systems.start`): in a stage with a cutover, the users
of the cutover's units start on the arrangement it moves them from
(``from``: ``city`` — hcmc's front door, the officers on hcmc — or
``brvt`` / ``binh-duong``: that former province's front door and one-stop
system); everyone else is on the national portal (citizens) and the
provincial system (officers). The plan room names those cutover fields;
`cutover_from` and `cutover_units` read them with their defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import RunError

#: A cutover that names no ``from`` moves users off the city portal (hcmc's front door), as on 18/6/2025.
DEFAULT_FROM = "city"
#: The names of the former provinces' systems (their own one-stop system and front door before they move).
FORMER_PROVINCES = ("brvt", "binh-duong")


def cutover_from(cutover: Any) -> str:
    """Which arrangement a cutover moves users off: ``city`` (default), ``brvt`` or ``binh-duong``."""
    for attr in ("from_", "source", "origin", "from_system"):
        value = getattr(cutover, attr, None)
        if value:
            return str(value)
    return DEFAULT_FROM


def cutover_units(stage: Any) -> frozenset[int]:
    """The units a stage's cutover moves (its ``units``; all the stage's by default); empty without a cutover."""
    cut = getattr(stage, "cutover", None)
    if cut is None:
        return frozenset()
    chosen = getattr(cut, "units", None)
    if chosen:
        try:
            return frozenset(int(u) for u in chosen)
        except (TypeError, ValueError):
            pass
    return frozenset(int(u) for u in stage.units)


#: The keys of a national portal's ``integration`` account (the password comes from ``password_env``).
INTEGRATION_KEYS = ("username", "ma_don_vi", "password_env")


def integration_pairs(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """An ``integration`` mapping as sorted (key, text) pairs; `RunError` naming `where` for a wrong one."""
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw or not set(raw) <= set(INTEGRATION_KEYS):
        raise RunError(f"{where}.integration: expected {{{', '.join(INTEGRATION_KEYS)}}} (no password: its variable "
                       f"goes in password_env)")
    bad = [k for k, v in raw.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise RunError(f"{where}.integration.{bad[0]}: expected a text")
    return tuple(sorted((str(k), str(v).strip()) for k, v in raw.items()))


@dataclass(frozen=True)
class SystemEntry:
    """One system of the run."""

    name: str
    system: str
    """``national``, ``provincial`` or ``portal`` (one app with both roles)."""
    url: str
    front_door_url: str | None = None
    front_door: str | None = None
    adapter: str | None = None
    front_door_adapter: str | None = None
    integration: tuple[tuple[str, str], ...] = ()
    """The national portal's integration account (username, ma_don_vi, password_env), as sorted pairs."""

    @property
    def door_name(self) -> str | None:
        """The name of its front door (None without one)."""
        return (self.front_door or self.name) if self.front_door_url else None


@dataclass(frozen=True)
class Place:
    """Where a user talks: the system's name (the ledger's ``system``), its address, and the adapter."""

    system: str
    url: str
    adapter: str


class Systems:
    """The systems of a run, by name."""

    def __init__(self, entries: Iterable[SystemEntry]) -> None:
        self.entries = {e.name: e for e in entries}
        if not self.entries:
            raise RunError("no systems given")

    # -- reading and writing ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any) -> Systems:
        """From ``systems.json``'s mapping; `RunError` naming what is wrong."""
        if not isinstance(data, dict) or not data:
            raise RunError("systems: expected a mapping of system names to {system, url, …}")
        entries = []
        for name, raw in data.items():
            if not isinstance(raw, dict) or not isinstance(raw.get("url"), str) or not raw.get("system"):
                raise RunError(f"systems: {name!r} needs a system and a url")
            fields = {k: raw.get(k) for k in ("front_door_url", "front_door", "adapter", "front_door_adapter")}
            entries.append(SystemEntry(name=str(name), system=str(raw["system"]), url=raw["url"].rstrip("/"),
                                       integration=integration_pairs(raw.get("integration"), f"systems: {name}"),
                                       **{k: (str(v) if v else None) for k, v in fields.items()}))
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> Systems:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise RunError(f"{path}: cannot read the systems: {exc}") from None

    @classmethod
    def single(cls, url: str, name: str = "portal") -> Systems:
        """One portal with both roles (the single reference portal of old, or a staging portal)."""
        return cls([SystemEntry(name=name, system="portal", url=url.rstrip("/"))])

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: {k: (dict(v) if k == "integration" else v) for k, v in asdict(e).items()
                       if k != "name" and v not in (None, ())}
                for name, e in self.entries.items()}

    def write(self, path: Path) -> None:
        """``systems.json`` (atomically: a reader never sees half of it)."""
        tmp = Path(path).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=1), encoding="utf-8")
        tmp.replace(path)

    # -- who is where --------------------------------------------------------------------------
    def national(self) -> SystemEntry:
        """The citizens' front door after every cutover: the national portal (or the single portal)."""
        if "national" in self.entries:
            return self.entries["national"]
        found = [e for e in self.entries.values() if e.system in ("national", "portal")]
        return found[0] if found else next(iter(self.entries.values()))

    def provincial(self) -> SystemEntry:
        """The officers' system after every cutover: HCMC's platform (the first provincial one), else the portal."""
        if "hcmc" in self.entries:
            return self.entries["hcmc"]
        found = [e for e in self.entries.values() if e.system == "provincial" and e.name not in FORMER_PROVINCES]
        return found[0] if found else self.national()

    def place(self, name: str, role: str) -> Place | None:
        """Where a `role` (citizen | officer) talks when on the system called `name`; None if the run has none."""
        entry = self.entries.get(name)
        if role == "citizen":
            if entry is not None and entry.door_name == name:
                return Place(name, str(entry.front_door_url), entry.front_door_adapter or "city")
            if entry is not None and entry.system in ("national", "portal"):
                return Place(name, entry.url, entry.adapter or "national")
            door = next((e for e in self.entries.values() if e.door_name == name), None)
            if door is not None:
                return Place(name, str(door.front_door_url), door.front_door_adapter or "city")
            return None
        if entry is not None and entry.system in ("provincial", "portal"):
            return Place(name, entry.url, entry.adapter if entry.system == "provincial" and entry.adapter
                         else "onestop")
        door = next((e for e in self.entries.values() if e.door_name == name), None)
        if door is not None:  # the officers of a front door's units work on the system behind it
            return self.place(door.name, role)
        return None

    def home(self, role: str) -> Place:
        """Where a `role` talks when no cutover holds it elsewhere."""
        entry = self.national() if role == "citizen" else self.provincial()
        place = self.place(entry.name, role)
        assert place is not None
        return place

    def start(self, role: str, unit: int, stage: Any) -> Place:
        """Where a user of `unit` starts the stage (see the module's docstring)."""
        if unit in cutover_units(stage):
            place = self.place(cutover_from(stage.cutover), role)
            if place is not None:
                return place
        return self.home(role)

    def moved(self, url: str, role: str) -> Place:
        """Where a user goes when a system says it moved to `url` (X-Portal-Moved)."""
        url = url.rstrip("/")
        for e in self.entries.values():
            if e.url == url:
                place = self.place(e.name, role)
                if place is not None:
                    return place
            if e.front_door_url == url and e.door_name:
                return Place(e.door_name, url, e.front_door_adapter or "city")
        home = self.home(role)
        return Place(home.system if home.url == url else "moved", url, home.adapter)

    # -- what the telemetry polls -------------------------------------------------------------
    def stats_urls(self) -> dict[str, list[str]]:
        """Each system name with the addresses whose ``/api/stats`` count its sessions (a front door apart)."""
        out: dict[str, list[str]] = {}
        seen: set[str] = set()
        for e in self.entries.values():
            for name, url in ((e.name, e.url), (e.door_name, e.front_door_url)):
                if name and url and url not in seen:
                    seen.add(url)
                    out.setdefault(name, []).append(url)
        return out

    def linked(self) -> list[SystemEntry]:
        """The provincial systems (their ``/api/stats`` carry the link's outbox)."""
        return [e for e in self.entries.values() if e.system == "provincial"]
