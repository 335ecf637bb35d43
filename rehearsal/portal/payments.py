"""Paying a dossier's fee: the citizen's call, and the simulated payment intermediary's page and signed callback.

One charge per dossier: a dossier waiting for its fee (status 6) has at most
one open (``pending``) payment, and starting again returns that one; the
callback marks a payment paid in the same transaction that moves its dossier
from 6 to 1, so a payment of a dossier that is no longer waiting (paid by
another payment, withdrawn) is refused (409) and never charged. The database
holds both rules as well (`rehearsal.portal.db.PAYMENT_RULES`).

The intermediary signs its answer (HMAC-SHA256 of ``payment_id|result``) with
`PortalSettings.payment_secret`, which comes from the environment
(``--payment-secret-env``, default ``REHEARSAL_PAYMENT_SECRET``) or is drawn
at random when the portal starts: no one outside the portal can sign a
"success", and the key never appears in a file or a log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3

from flask import Blueprint, Response, jsonify, redirect

from ..shared.status import DossierStatus
from . import journal
from .context import now_iso, own_dossier, require_session, settings
from .db import get_db, transaction
from .errors import InvalidField, NotFound, PaymentFailed, WrongState
from .inputs import query_text, same_secret, shown

bp = Blueprint("payments", __name__)
#: The intermediary's page and its callback: every app that takes payments has them, whatever its own API.
intermediary_bp = Blueprint("payment_intermediary", __name__)


def _signature(payment_id: str, result: str) -> str:
    message = f"{payment_id}|{result}".encode("utf-8", "surrogatepass")
    return hmac.new(settings().payment_secret, message, hashlib.sha256).hexdigest()


@bp.post("/api/dossiers/<int:dossier_id>/payment")
def start_payment(dossier_id: int) -> Response:
    """Start paying a dossier's fee: where the payment intermediary's page is (the open payment, if one is)."""
    sess = require_session("citizen")
    db = get_db()
    row = own_dossier(db, sess, dossier_id)
    payment_id = open_payment(db, row)
    return jsonify(payment_id=payment_id, redirect_url=f"/pay/{payment_id}", amount_vnd=row["fee_vnd"])


def open_payment(db: sqlite3.Connection, row: sqlite3.Row) -> str:
    """The dossier's open payment, made if it has none (409 if no fee is due)."""
    dossier_id = row["id"]
    if row["status"] != DossierStatus.FEE_DUE or row["paid"]:
        raise WrongState(f"no fee due (status {row['status']})", "status")
    with transaction(db):  # the look-up and the insert together: two racing starts open one payment
        pending = db.execute("SELECT id FROM payments WHERE dossier_id = ? AND status = 'pending'",
                             (dossier_id,)).fetchone()
        if pending is not None:
            payment_id = pending["id"]
        else:
            payment_id = secrets.token_urlsafe(12)
            db.execute("INSERT INTO payments VALUES (?, ?, ?, 'pending', ?, NULL)",
                       (payment_id, dossier_id, row["fee_vnd"], now_iso()))
    return payment_id


@intermediary_bp.get("/pay/<payment_id>")
def intermediary(payment_id: str) -> Response:
    """The payment intermediary's page: it takes the money and sends the citizen back, signed."""
    if get_db().execute("SELECT 1 FROM payments WHERE id = ?", (payment_id,)).fetchone() is None:
        raise NotFound(f"unknown payment {shown(payment_id, 24)!r}", "payment_id")
    result = "success"
    return redirect(f"/api/payments/callback?payment_id={payment_id}&result={result}"
                    f"&signature={_signature(payment_id, result)}", code=302)


@intermediary_bp.get("/api/payments/callback")
def payment_callback() -> Response:
    """The intermediary's signed answer: the dossier is charged once and moves from fee due to submitted."""
    payment_id, result = query_text("payment_id", 64), query_text("result", 32)
    if not same_secret(query_text("signature", 128), _signature(payment_id, result)):
        raise InvalidField("bad signature from the payment intermediary", "signature")
    db = get_db()
    with transaction(db):
        pay = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
        if pay is None:
            raise NotFound("unknown payment", "payment_id")
        if result != "success":
            raise PaymentFailed("the intermediary refused the payment", "result")
        if pay["status"] == "paid":  # the same callback again: already charged, nothing more
            return jsonify(dossier_id=pay["dossier_id"], paid=True)
        if pay["status"] != "pending":
            raise WrongState(f"this payment is {pay['status']}", "payment_id")
        cur = db.execute("UPDATE dossiers SET paid = 1, status = ?, updated_at = ? "
                         "WHERE id = ? AND status = ? AND paid = 0",
                         (DossierStatus.SUBMITTED, now_iso(), pay["dossier_id"], DossierStatus.FEE_DUE))
        if cur.rowcount == 0:  # paid by another payment, or withdrawn: this one is never charged
            raise WrongState("the dossier is not waiting for this fee (paid already, or withdrawn)", "payment_id")
        db.execute("UPDATE payments SET status = 'paid', paid_at = ? WHERE id = ?", (now_iso(), payment_id))
        row = db.execute("SELECT id, code FROM dossiers WHERE id = ?", (pay["dossier_id"],)).fetchone()
        journal.changed(db, row, DossierStatus.SUBMITTED, "payment", f"paid {pay['amount']} VND", kind="paid",
                        payload={"MucPhi": pay["amount"], "DaThanhToan": "1"})
    return jsonify(dossier_id=pay["dossier_id"], paid=True)
