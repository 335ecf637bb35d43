"""The heap freezer: grown heaps are frozen, and a drop gives the frozen cycles back to the collector.

Each case runs in its own Python process: `gc.freeze()` is process-wide and
must not change how the test process itself collects.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import gc, json, weakref
from rehearsal.shared.heap import HeapFreezer

class User:
    def __init__(self):
        self.me = self  # a reference cycle, as a Locust user with its client and greenlet has

users = []
freezer = HeapFreezer(lambda: len(users))
"""


def _run(body: str) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_growth_freezes_and_a_steady_count_does_nothing() -> None:
    out = _run("""
        actions = [freezer.check()]                      # 0 users: nothing
        users.extend(User() for _ in range(10))
        actions.append(freezer.check())                  # +10: under 20, nothing
        users.extend(User() for _ in range(30))
        actions.append(freezer.check())                  # 40: froze
        frozen = gc.get_freeze_count()
        actions.append(freezer.check())                  # still 40: nothing
        users.extend(User() for _ in range(1000))
        actions.append(freezer.check())                  # 1,040: froze again
        print(json.dumps({"actions": actions, "frozen": frozen, "frozen_after": gc.get_freeze_count(),
                          "at": freezer.frozen_at}))
    """)
    assert out["actions"] == [None, None, "froze", None, "froze"]
    assert out["frozen"] > 40
    assert out["frozen_after"] >= out["frozen"] + 1000
    assert out["at"] == 1040


def test_a_drop_collects_the_frozen_cycles_of_users_gone() -> None:
    """Without the freezer's drop handling a frozen cycle outlives gc.collect(); with it, it is collected."""
    out = _run("""
        users.extend(User() for _ in range(100))
        assert freezer.check() == "froze"
        gone = weakref.ref(users[0])
        del users[:50]                                  # a ramp down: 50 users stopped
        gc.collect()
        kept_by_freeze = gone() is not None             # frozen: the collector does not see the cycle
        action = freezer.check()
        print(json.dumps({"kept_by_freeze": kept_by_freeze, "action": action, "collected": gone() is None,
                          "still_frozen": gc.get_freeze_count() > 0, "at": freezer.frozen_at}))
    """)
    assert out["kept_by_freeze"] is True
    assert out["action"] == "collected"
    assert out["collected"] is True
    assert out["still_frozen"] is True  # the 50 users still running are frozen again
    assert out["at"] == 50


def test_a_full_collection_is_followed_by_a_freeze() -> None:
    """Connections' objects turn over with each request: what survives a full collection is frozen next."""
    out = _run("""
        users.extend(User() for _ in range(40))
        assert freezer.check() == "froze"
        before = gc.get_freeze_count()
        survivors = [User() for _ in range(500)]       # a request's objects on every connection
        gc.collect()                                    # a full collection runs (here: by hand)
        action = freezer.check()
        after = gc.get_freeze_count()
        print(json.dumps({"action": action, "gained": after - before, "next": freezer.check()}))
    """)
    assert out["action"] == "refroze"
    assert out["gained"] >= 500
    assert out["next"] is None


def test_a_doubled_resident_size_is_collected_once() -> None:
    """Cycles that died while frozen do not pile up: past twice the resident size, one collect-and-freeze pass."""
    out = _run("""
        import psutil
        freezer = HeapFreezer(lambda: len(users), reclaim_floor_bytes=psutil.Process().memory_info().rss)
        users.extend(User() for _ in range(40))
        assert freezer.check() == "froze"
        gone = weakref.ref(users.pop())                 # a frozen cycle becomes garbage (count -1: no drop)
        big = [User() for _ in range(600_000)]          # the process more than doubles its resident size
        gc.freeze()
        gc.collect()
        kept_by_freeze = gone() is not None
        action = freezer.check()
        print(json.dumps({"kept_by_freeze": kept_by_freeze, "action": action, "collected": gone() is None,
                          "frozen": gc.get_freeze_count(), "next": freezer.check()}))
    """)
    assert out["kept_by_freeze"] is True
    assert out["action"] == "reclaimed"
    assert out["collected"] is True
    assert out["frozen"] >= 600_000  # the live big heap is frozen again
    assert out["next"] is None
