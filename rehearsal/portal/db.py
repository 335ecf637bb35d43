"""The portal's SQLite database: schema, set-up, one connection per request.

WAL mode, so readers (statistics, reconciliation) never block the writer.
Connections are in autocommit mode (``isolation_level=None``): a write of
more than one statement is one explicit transaction, `transaction(db)`
(``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error), committed
before the answer. ``with db:`` would not do: in autocommit mode it opens no
transaction, so a crash between two statements left half a write.

Nothing inside a transaction may wait on the network (read a request body,
sleep): the portal is one gevent process, and a greenlet that yielded while
holding the write lock would leave every other writer spinning in SQLite's
busy handler, which blocks the whole process. Handlers read and check their
input first, then write.

A request borrows a connection from the app's pool and gives it back at
teardown, rather than opening and closing one: opening (schema read, pragmas,
mapping the WAL index) and closing (which checkpoints the WAL when it is the
last connection) took 45 % of the portal's CPU on the demo's mixed journey
(py-spy, tools/bench/portal.py). A connection is only ever used by the one
request that borrowed it, and goes back with no transaction open.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, current_app, g

from ..shared.wards import load_units
from .settings import PortalSettings

log = logging.getLogger("rehearsal.portal")

#: First dossier id of each face or system: none hands out another's ids, so a migrated or pulled dossier keeps
#: its id. A system that takes rows from others numbers above them (hcmc pulls from the national portal and
#: imports from brvt and binh-duong): SQLite's AUTOINCREMENT continues after the largest id it ever held.
ID_BASE = {"legacy": 0, "national": 10_000_000, "brvt": 30_000_000, "binh-duong": 40_000_000, "hcmc": 50_000_000}

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    code INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, former_province TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS officers (
    id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, unit_code INTEGER NOT NULL REFERENCES units(code),
    number INTEGER NOT NULL, salt BLOB NOT NULL, password_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS citizens (
    id INTEGER PRIMARY KEY, id_number TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY, role TEXT NOT NULL, citizen_id INTEGER, officer_id INTEGER, unit_code INTEGER,
    username TEXT, created_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dossiers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, code TEXT NOT NULL UNIQUE,
    citizen_id INTEGER NOT NULL REFERENCES citizens(id), client_ref TEXT,
    unit_code INTEGER NOT NULL REFERENCES units(code), procedure_code TEXT NOT NULL,
    lien_thong INTEGER NOT NULL, fee_vnd INTEGER NOT NULL, paid INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL, agency_state TEXT, agency_due REAL, agency_done INTEGER NOT NULL DEFAULT 0,
    decision TEXT, reason TEXT, supplement_reason TEXT, supplement_count INTEGER NOT NULL DEFAULT 0,
    form TEXT NOT NULL, submitted_at TEXT NOT NULL, received_at TEXT, due_at TEXT, decided_at TEXT,
    returned_at TEXT, updated_at TEXT NOT NULL, fingerprint TEXT,
    UNIQUE (citizen_id, client_ref));
CREATE INDEX IF NOT EXISTS dossiers_queue ON dossiers (unit_code, status, id);
CREATE INDEX IF NOT EXISTS dossiers_citizen ON dossiers (citizen_id, id);
CREATE TABLE IF NOT EXISTS attachments (
    id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id), name TEXT NOT NULL,
    filename TEXT, size INTEGER NOT NULL, sha256 TEXT NOT NULL, content BLOB);
CREATE INDEX IF NOT EXISTS attachments_dossier ON attachments (dossier_id);
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id), amount INTEGER NOT NULL,
    status TEXT NOT NULL, created_at TEXT NOT NULL, paid_at TEXT);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id), at TEXT NOT NULL,
    status INTEGER NOT NULL, actor TEXT NOT NULL, note TEXT);
CREATE INDEX IF NOT EXISTS history_dossier ON history (dossier_id);
"""

#: The national portal's own tables: the feed of citizen-side changes the link pulls, and the processing
#: steps provincial systems pushed (one row per step, whatever how often it was pushed).
NATIONAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS feed (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, dossier_id INTEGER NOT NULL, code TEXT NOT NULL,
    at TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS synced_steps (
    id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id), code TEXT NOT NULL,
    step_key TEXT NOT NULL, at TEXT NOT NULL, order_key TEXT NOT NULL, status INTEGER NOT NULL, actor TEXT,
    title TEXT, department TEXT, note TEXT, started TEXT, due TEXT, received_at REAL NOT NULL,
    UNIQUE (code, step_key));
CREATE INDEX IF NOT EXISTS synced_steps_dossier ON synced_steps (dossier_id, order_key);
"""

#: A provincial system's own tables: the outbox of what the national portal must learn (pushed by the
#: link, acknowledged on error_code "0") and the link's state (the feed cursor, its counters).
PROVINCIAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, code TEXT NOT NULL, dossier_id INTEGER NOT NULL, kind TEXT NOT NULL,
    step_seq INTEGER NOT NULL, status INTEGER NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, note TEXT,
    created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    pushed_at REAL, acked_at REAL, last_error TEXT, UNIQUE (code, kind, step_seq));
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_dossier ON outbox (dossier_id);
CREATE TABLE IF NOT EXISTS link_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: Columns the two systems add to a dossier: how it was filed (KenhThucHien 1 in person, 2 online, 3 postal)
#: and its owner's name as the other system sent it (ChuHoSo).
SYSTEM_COLUMNS = (("channel", "INTEGER NOT NULL DEFAULT 2"), ("owner_name", "TEXT"))

#: One open payment per dossier, and one charge: the database holds the rule too, not only the handlers.
#: Apart from SCHEMA because a database written by an older portal may break them (see `init_db`).
PAYMENT_RULES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS payments_one_open ON payments (dossier_id) WHERE status = 'pending'",
    "CREATE UNIQUE INDEX IF NOT EXISTS payments_one_charge ON payments (dossier_id) WHERE status = 'paid'",
)


def connect(settings: PortalSettings) -> sqlite3.Connection:
    """A new connection to the portal's database, rows as `sqlite3.Row`, foreign keys on."""
    conn = sqlite3.connect(settings.db_path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: ``BEGIN IMMEDIATE``, then ``COMMIT``, or ``ROLLBACK`` if the block raises."""
    db.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write: no upgrade deadlock
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite ends it itself on some errors (a full disk): ROLLBACK would hide the cause
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _upgrade(conn: sqlite3.Connection, system: str) -> None:
    """Bring a database written by an older portal up to SCHEMA (columns and rules added since)."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(dossiers)")}
    if "fingerprint" not in columns:
        conn.execute("ALTER TABLE dossiers ADD COLUMN fingerprint TEXT")
    if system != "portal":  # the single portal of old keeps its tables as they were
        conn.executescript({"national": NATIONAL_SCHEMA, "provincial": PROVINCIAL_SCHEMA}.get(system, ""))
        for name, decl in SYSTEM_COLUMNS:
            if name not in columns:
                conn.execute(f"ALTER TABLE dossiers ADD COLUMN {name} {decl}")
    for rule in PAYMENT_RULES:
        try:
            conn.execute(rule)
        except sqlite3.IntegrityError:  # an old database already charged a dossier twice: keep serving it
            log.warning("database %s breaks a payment rule; the handlers still keep it: %s", conn, rule)


def set_id_base(db: sqlite3.Connection, key: str) -> None:
    """Start this face's or system's dossier ids at its base (once, on an empty database)."""
    base = ID_BASE.get(key, 0)
    if base and db.execute("SELECT count(*) FROM sqlite_sequence WHERE name = 'dossiers'").fetchone()[0] == 0:
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('dossiers', ?)", (base,))


def hash_password(password: str, salt: bytes) -> bytes:
    # Cheap on purpose: 336 accounts are hashed at every start of a reference portal.
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 2000)


def init_db(settings: PortalSettings) -> None:
    """Create the schema and seed the units and officer accounts (idempotent)."""
    Path(settings.db_path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(settings)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # persistent: every later connection is in WAL mode
        conn.executescript(SCHEMA)
        _upgrade(conn, settings.system)
        set_id_base(conn, settings.id_key)
        have = {r[0] for r in conn.execute("SELECT username FROM officers")}
        rows = []
        # The national portal has no officers: they work in the provincial systems.
        for u in load_units() if settings.system != "national" else ():
            for n in range(1, settings.officers_per_unit + 1):
                username = f"cb{u.code}-{n}"
                if username not in have:
                    salt = os.urandom(8)
                    rows.append((username, u.code, n, salt, hash_password(settings.officer_password, salt)))
        with transaction(conn):
            conn.executemany("INSERT OR IGNORE INTO units VALUES (?, ?, ?, ?)",
                             [(u.code, u.name, u.type.value, u.former_province.value) for u in load_units()])
            conn.executemany("INSERT INTO officers (username, unit_code, number, salt, password_hash) "
                             "VALUES (?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()


#: Idle connections kept per app; more than this many requests at once open (and later close) extra ones.
POOL_MAX = 64


def _pool() -> list[sqlite3.Connection]:
    return current_app.extensions.setdefault("rehearsal_db_pool", [])


def get_db() -> sqlite3.Connection:
    """This request's connection (borrowed from the pool on first use, given back at teardown)."""
    if "db" not in g:
        pool = _pool()
        g.db = pool.pop() if pool else connect(current_app.config["PORTAL"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    """Give this request's connection back to the pool (app teardown), rolled back if left half-way."""
    db = g.pop("db", None)
    if db is None:
        return
    pool = _pool()
    try:
        if db.in_transaction:  # a handler that failed half-way: nothing of it may reach the next request
            db.rollback()
    except sqlite3.Error:
        db.close()
        return
    if len(pool) < POOL_MAX:
        pool.append(db)
    else:
        db.close()


def close_pool(app: Flask) -> None:
    """Close the app's idle connections (when the server stops)."""
    pool = app.extensions.get("rehearsal_db_pool", [])
    while pool:
        pool.pop().close()
