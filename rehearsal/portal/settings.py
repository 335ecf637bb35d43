"""Settings of the reference portal (one frozen object, passed to the app factory)."""

from __future__ import annotations

from dataclasses import dataclass
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
    officer_password: str = "rehearsal"
    """Password of every officer account (the reference portal only)."""
    admin_token: str | None = None
    """If set, admin calls need header ``X-Admin-Token``; if not, they are allowed from loopback only."""
    session_ttl_s: float = 8 * 3600
    """How long a session token stays valid (wall seconds)."""
    active_window_s: float = 60.0
    """A session is *active* if it made a request in this many wall seconds."""
    max_attachment_bytes: int = 2 * 1024 * 1024
    """Largest attachment accepted (413 above)."""
    agency_delay_s: float = 600.0
    """Simulated seconds the second agency keeps a liên thông dossier (divided by the time scale)."""
    working_day_s: float = 8 * 3600
    """Simulated length of one working day, for due times."""
    face: str = "national"
    """Which portal this is: ``national`` or ``legacy`` (the city portal being closed)."""
    sqlite_synchronous: str = "NORMAL"
    """In WAL mode NORMAL survives a crash of the process (what we test); FULL also survives power loss."""
    payment_secret: bytes = b"reference-portal-payment-secret"
    """HMAC key the simulated payment intermediary signs its callbacks with."""
