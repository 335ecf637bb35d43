"""Settings of the reference portal (one frozen object, passed to the app factory).

Which system the process is: the single reference portal of old
(``system="portal"``: citizens and officers in one app, its ``face``
national or legacy), the national portal (``system="national"``) or a
provincial one-stop system (``system="provincial"``, ``name`` hcmc, brvt or
binh-duong; with a `LinkSettings` when it supervises its link agent).

Secrets (the officers' password, the admin token, the payment intermediary's
signing key, the link's and the city portal's passwords) come from
environment variables named on the command line (`rehearsal.portal.cli`),
never from a file or an argument's value, and are left out of the object's
repr so a log line or a traceback cannot carry them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .link.settings import LinkSettings

#: The systems a process can be, and the names a provincial system may have.
SYSTEMS = ("portal", "national", "provincial")
PROVINCIAL_NAMES = ("hcmc", "brvt", "binh-duong")


@dataclass(frozen=True)
class PortalSettings:
    """Everything the reference portal can be told at start."""

    db_path: Path
    """SQLite database file (created if missing); WAL mode."""
    time_scale: float = 1.0
    """Simulated seconds per wall second: due times and the second agency's delay are divided by it."""
    officers_per_unit: int = 2
    """Officer accounts created per unit (``cb<unit>-1`` … ``cb<unit>-n``)."""
    officer_password: str = field(default="rehearsal", repr=False)
    """Password of every officer account (the reference portal only)."""
    admin_token: str | None = field(default=None, repr=False)
    """If set, admin calls need header ``X-Admin-Token``; if not, they are allowed from loopback only."""
    session_ttl_s: float = 8 * 3600
    """How long a session token stays valid (wall seconds)."""
    active_window_s: float = 60.0
    """A session is *active* if it made a request in this many wall seconds."""
    max_attachment_bytes: int = 2 * 1024 * 1024
    """Largest attachment accepted (413 above); one file per attachment name."""
    max_dossier_bytes: int = 10 * 1024 * 1024
    """Largest total of one dossier's attachments, the submission's and every supplement's (413 above)."""
    max_json_bytes: int = 64 * 1024
    """Largest JSON body of a call (413 before parsing); the admin import has its own."""
    max_import_bytes: int = 16 * 1024 * 1024
    """Largest JSON body of ``POST /api/admin/import`` (a page of 500 full export rows is ~1.5 MB)."""
    agency_delay_s: float = 600.0
    """Simulated seconds the second agency keeps a liên thông dossier (divided by the time scale)."""
    working_day_s: float = 8 * 3600
    """Simulated length of one working day, for due times."""
    face: str = "national"
    """Which portal this is: ``national`` or ``legacy`` (the city portal being closed)."""
    sqlite_synchronous: str = "NORMAL"
    """In WAL mode NORMAL survives a crash of the process (what we test); FULL also survives power loss."""
    payment_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    """HMAC key the simulated payment intermediary signs its callbacks with: random per start unless given."""
    system: str = "portal"
    """``portal`` (the single portal of old, both roles), ``national`` or ``provincial``."""
    name: str = "national"
    """The system's name: ``national``, or a provincial system's ``hcmc``, ``brvt``, ``binh-duong``."""
    link_password: str = field(default="rehearsal", repr=False)
    """National: the password of the integration accounts (``POST /api/dvcqg/auth``)."""
    integration_accounts: tuple[tuple[str, str], ...] = (("hcmc", "000.00.00.H29"),)
    """National: (account, madonvi) pairs the integration API signs in (one per provincial system)."""
    city_password: str = field(default="rehearsal", repr=False)
    """Provincial: the password every citizen account of its city-style front door takes (made at first sign-in)."""
    server_timing: bool = True
    """Record each call's server-side time (``/api/stats``, ``/metrics``, ``/api/timings``); off only to measure its cost."""
    link: LinkSettings | None = None
    """Provincial: how to start and supervise its link agent (None: no link, as for brvt and binh-duong)."""

    @property
    def id_key(self) -> str:
        """Which range of dossier ids this database numbers from (`rehearsal.portal.db.ID_BASE`)."""
        return self.face if self.system == "portal" else self.name
