"""The dossier's status codes, the one copy every room uses.

The ten codes are the ones provincial systems sync to the National Public
Service Portal (DESIGN.md, "Words"); the reference portal stores them, the
users read them, reconciliation and the report count them. A dossier is
**complete** when its result is returned (10) or it was refused at intake
(3: the citizen gets a refusal notice); the harness's ledger names the event
that makes it so (``returned``, ``refused_intake``). A dossier whose citizen
asked to withdraw it (7, ``withdrawal_asked``) and that an officer then
stopped (8, ``stopped``) is **withdrawn**: ended, neither complete nor
pending, it leaves the completion rate's count (`completion_rate`).
"""

from __future__ import annotations

import enum


class DossierStatus(enum.IntEnum):
    """TrangThaiHoSo: where a dossier is in its lifecycle."""

    SUBMITTED = 1
    RECEIVED = 2
    REFUSED_INTAKE = 3
    PROCESSING = 4
    SUPPLEMENT_REQUESTED = 5
    FEE_DUE = 6
    WITHDRAWAL_ASKED = 7
    STOPPED = 8
    DONE = 9
    RETURNED = 10

    @property
    def label(self) -> str:
        """The Vietnamese name the national portal shows."""
        return _LABELS[self]

    @property
    def complete(self) -> bool:
        return self in COMPLETE

    @classmethod
    def known(cls, value: object) -> bool:
        """Whether `value` is one of the ten codes (an int, not a bool)."""
        return isinstance(value, int) and not isinstance(value, bool) and value in _VALUES


_LABELS = {
    DossierStatus.SUBMITTED: "Mới đăng ký",
    DossierStatus.RECEIVED: "Được tiếp nhận",
    DossierStatus.REFUSED_INTAKE: "Không được tiếp nhận",
    DossierStatus.PROCESSING: "Đang xử lý",
    DossierStatus.SUPPLEMENT_REQUESTED: "Yêu cầu bổ sung giấy tờ",
    DossierStatus.FEE_DUE: "Yêu cầu thực hiện nghĩa vụ tài chính",
    DossierStatus.WITHDRAWAL_ASKED: "Công dân yêu cầu rút hồ sơ",
    DossierStatus.STOPPED: "Dừng xử lý",
    DossierStatus.DONE: "Đã xử lý xong",
    DossierStatus.RETURNED: "Đã trả kết quả",
}
_VALUES = frozenset(int(s) for s in DossierStatus)

#: The statuses that end a dossier: result returned, or refused at intake.
COMPLETE: frozenset[DossierStatus] = frozenset({DossierStatus.REFUSED_INTAKE, DossierStatus.RETURNED})
#: The same, as SQL: ``status IN (3, 10)``.
COMPLETE_SQL = "(" + ", ".join(str(int(s)) for s in sorted(COMPLETE)) + ")"
#: The statuses after which nothing more happens: complete, or stopped (8) after the citizen asked to
#: withdraw. A stopped dossier is neither complete nor pending: it leaves the completion rate's count.
ENDED: frozenset[DossierStatus] = COMPLETE | {DossierStatus.STOPPED}
ENDED_SQL = "(" + ", ".join(str(int(s)) for s in sorted(ENDED)) + ")"

#: Ledger event kinds that move a dossier's status, and the status they leave it in. A submission
#: with a fee starts at 6 (fee due) and moves to 1 once paid, so ``submitted`` promises only 6, the
#: lowest rank; ``paid`` promises 1.
STATUS_AFTER: dict[str, DossierStatus] = {
    "submitted": DossierStatus.FEE_DUE, "paid": DossierStatus.SUBMITTED, "received": DossierStatus.RECEIVED,
    "refused_intake": DossierStatus.REFUSED_INTAKE, "processing": DossierStatus.PROCESSING,
    "supplement_requested": DossierStatus.SUPPLEMENT_REQUESTED, "supplemented": DossierStatus.PROCESSING,
    "transferred": DossierStatus.PROCESSING, "taken_back": DossierStatus.PROCESSING,
    "decided": DossierStatus.DONE, "returned": DossierStatus.RETURNED,
    "withdrawal_asked": DossierStatus.WITHDRAWAL_ASKED, "stopped": DossierStatus.STOPPED,
}
#: Ledger event kinds after which a dossier is complete.
COMPLETE_KINDS: tuple[str, ...] = tuple(k for k, s in STATUS_AFTER.items() if s in COMPLETE)
#: Ledger event kinds after which a dossier is withdrawn: stopped (8) at its citizen's request.
WITHDRAWN_KINDS: tuple[str, ...] = tuple(k for k, s in STATUS_AFTER.items() if s == DossierStatus.STOPPED)
#: The statuses a citizen may ask to withdraw from: every one before the dossier is decided or refused.
WITHDRAWABLE: frozenset[DossierStatus] = frozenset({
    DossierStatus.SUBMITTED, DossierStatus.RECEIVED, DossierStatus.PROCESSING, DossierStatus.SUPPLEMENT_REQUESTED,
    DossierStatus.FEE_DUE})

#: How far along the lifecycle each status is: a portal showing a dossier at a lower rank than the
#: last event the harness saw is inconsistent. Statuses on the same rank are alternatives: stopped (8)
#: follows the withdrawal asked (7) as decided (9) follows processing, so a portal showing 7 after the
#: harness saw the stop is behind.
RANK: dict[int, int] = {6: 0, 1: 1, 2: 2, 4: 3, 5: 3, 7: 3, 8: 4, 9: 4, 3: 5, 10: 5}


def completion_rate(complete: int, submitted: int, withdrawn: int = 0) -> float | None:
    """complete ÷ (submitted − withdrawn): a dossier stopped at its citizen's request leaves the count.

    None when nothing is left to complete (nothing filed, or every dossier withdrawn).
    """
    counted = submitted - withdrawn
    return complete / counted if counted > 0 else None
