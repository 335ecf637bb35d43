"""Reconciliation finds lost, duplicated and inconsistent dossiers, and counts on-time ones."""

from __future__ import annotations

from rehearsal.results.reconcile import reconcile


def _row(did: int, status: int, *, citizen: str = "c", ref: str | None = None, unit: int = 26506,
         returned: str | None = None, due: str | None = None, supplements: int = 0) -> dict:
    return {"id": did, "status": status, "citizen_id": citizen, "client_ref": ref or f"r{did}",
            "unit_code": unit, "submitted_at": "2025-06-25T01:00:00Z", "due_at": due,
            "returned_at": returned, "supplement_count": supplements}


def _sub(did: int, unit: int = 26506, ref: str | None = None, t: float = 0.0) -> dict:
    return {"t": t, "kind": "submitted", "id": did, "unit": unit, "citizen": "c", "client_ref": ref or f"r{did}"}


def test_everything_found_and_complete() -> None:
    events = [_sub(1), _sub(2, unit=26509), {"t": 1, "kind": "returned", "id": 1}]
    rows = [_row(1, 10, returned="2025-06-25T01:10:00Z", due="2025-06-25T02:00:00Z"),
            _row(2, 4, unit=26509)]
    rec = reconcile(events, rows)
    assert (rec.submitted, rec.complete, rec.lost, rec.duplicated, rec.inconsistent) == (2, 1, [], 0, [])
    assert rec.completion_rate == 0.5
    assert rec.units[26506].completion_rate == 1.0 and rec.units[26509].completion_rate == 0.0
    assert rec.on_time_rate == 1.0
    assert rec.units[26506].complete_seconds == [600.0]


def test_a_dossier_the_portal_cannot_show_is_lost() -> None:
    rec = reconcile([_sub(1), _sub(2), _sub(3)], [_row(1, 1), _row(3, 1)])
    assert rec.lost == [2]
    assert rec.submitted == 3


def test_duplicates_on_either_side_are_counted() -> None:
    # The portal holds the same (citizen, client_ref) twice, and the harness saw
    # one client_ref come back with two different ids.
    events = [_sub(1, ref="a"), _sub(2, ref="b"), _sub(3, ref="b")]
    rows = [_row(1, 1, ref="a"), _row(4, 1, ref="a"), _row(2, 1, ref="b"), _row(3, 1, ref="x")]
    assert reconcile(events, rows).duplicated == 2


def test_portal_behind_the_ledger_is_inconsistent() -> None:
    events = [_sub(1), {"t": 1, "kind": "returned", "id": 1}, _sub(2),
              {"t": 1, "kind": "supplement_requested", "id": 2}]
    rec = reconcile(events, [_row(1, 4), _row(2, 4)])  # 2: resubmitted, the citizen's event not seen: fine
    assert rec.inconsistent == [1]


def test_on_time_subtracts_supplement_wait_and_second_supplement_is_overdue() -> None:
    import datetime as dt

    t0 = dt.datetime(2025, 6, 25, 1, 0, tzinfo=dt.timezone.utc).timestamp()
    events = [_sub(1), _sub(2), _sub(3),
              {"t": t0, "kind": "supplement_requested", "id": 1},
              {"t": t0 + 1800, "kind": "supplemented", "id": 1}]
    rows = [
        # 1: returned 20 min after due, but waited 30 min for the citizen: on time.
        _row(1, 10, returned="2025-06-25T02:20:00Z", due="2025-06-25T02:00:00Z", supplements=1),
        # 2: late with no excuse.
        _row(2, 10, returned="2025-06-25T02:20:00Z", due="2025-06-25T02:00:00Z"),
        # 3: early, but asked for a supplement twice.
        _row(3, 10, returned="2025-06-25T01:20:00Z", due="2025-06-25T02:00:00Z", supplements=2),
    ]
    rec = reconcile(events, rows)
    assert (rec.on_time, rec.finished) == (1, 3)


def test_an_unpaid_fee_is_not_inconsistent_but_a_paid_one_left_unpaid_is() -> None:
    # Status 6 (fee due) is where a submission with a fee starts: only a "paid" event promises more.
    events = [_sub(1), _sub(2), {"t": 1, "kind": "paid", "id": 2}]
    rec = reconcile(events, [_row(1, 6), _row(2, 6)])
    assert rec.inconsistent == [2]


def test_a_withdrawn_dossier_leaves_the_completion_count_and_is_not_finished() -> None:
    # 1 returned; 2 stopped after its citizen asked to withdraw it (8: ended, counted apart);
    # 3 withdrawal asked, not stopped yet (7: still open); 4 at processing; 5 at another unit, stopped.
    events = [_sub(1), _sub(2), _sub(3), _sub(4), _sub(5, unit=26509),
              {"t": 1, "kind": "returned", "id": 1},
              {"t": 1, "kind": "withdrawal_asked", "id": 2}, {"t": 2, "kind": "stopped", "id": 2},
              {"t": 1, "kind": "withdrawal_asked", "id": 3}, {"t": 1, "kind": "processing", "id": 4},
              {"t": 1, "kind": "withdrawal_asked", "id": 5}, {"t": 2, "kind": "stopped", "id": 5}]
    rows = [_row(1, 10, returned="2025-06-25T01:10:00Z", due="2025-06-25T02:00:00Z"), _row(2, 8), _row(3, 7),
            _row(4, 4), _row(5, 8, unit=26509)]
    rec = reconcile(events, rows)
    assert (rec.submitted, rec.complete, rec.withdrawn, rec.lost, rec.inconsistent) == (5, 1, 2, [], [])
    assert rec.by_status == {10: 1, 8: 2, 7: 1, 4: 1}
    assert rec.completion_rate == 1 / 3  # complete ÷ (submitted − withdrawn): 7 and 4 are still open
    assert (rec.on_time, rec.finished, rec.on_time_rate) == (1, 1, 1.0)  # withdrawn is not finished
    home, other = rec.units[26506], rec.units[26509]
    assert (home.submitted, home.complete, home.withdrawn, home.finished) == (4, 1, 1, 1)
    assert home.completion_rate == 1 / 3 and home.as_dict()["withdrawn"] == 1
    assert (other.submitted, other.withdrawn, other.completion_rate) == (1, 1, None)  # nothing left to complete


def test_a_portal_showing_the_withdrawal_again_after_the_stop_is_inconsistent() -> None:
    events = [_sub(1), _sub(2), {"t": 1, "kind": "withdrawal_asked", "id": 1}, {"t": 2, "kind": "stopped", "id": 1},
              {"t": 1, "kind": "withdrawal_asked", "id": 2}]
    rec = reconcile(events, [_row(1, 7), _row(2, 8)])  # 2: stopped, the officer's event not seen: fine
    assert rec.inconsistent == [1] and rec.withdrawn == 1


def test_withdrawals_counted_from_the_ledger_alone() -> None:
    from rehearsal.results.reconcile import from_ledger

    events = [_sub(1), _sub(2), _sub(3), {"t": 1, "kind": "returned", "id": 1},
              {"t": 1, "kind": "withdrawal_asked", "id": 2}, {"t": 2, "kind": "stopped", "id": 2},
              {"t": 1, "kind": "withdrawal_asked", "id": 3}]
    rec = from_ledger(events)
    assert (rec.complete, rec.withdrawn, rec.by_status) == (1, 1, {10: 1, 8: 1, 7: 1})
    assert rec.completion_rate == 0.5
