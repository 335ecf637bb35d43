"""Settings of the reference portal (one frozen object, passed to the app factory).

Secrets (the officers' password, the admin token, the payment intermediary's
signing key) come from environment variables named on the command line
(`rehearsal.portal.cli`), never from a file or an argument's value, and are
left out of the object's repr so a log line or a traceback cannot carry them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path


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
