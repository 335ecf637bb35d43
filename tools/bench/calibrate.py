"""Locust users of the capacity benchmark, and the calibration of the machine it runs on.

Run by tools/bench/capacity.py as ``locust -f tools/bench/calibrate.py``:

- `BareUser`: a bare ``FastHttpUser`` asking ``GET /api/health`` with no
  wait: its requests per CPU-second of the Locust process is the machine's
  calibration (how fast this machine makes requests), measured in the same
  run as the figures it is printed beside.
- `SessionCitizen`: one signed-in citizen at real-time think times: VNeID
  sign-in (OTP, then verify), then every 20–50 s (``CAPACITY_THINK``) a look
  at their own dossiers (``GET /api/dossiers``, a database read with the
  session checked): every gap under the portal's 60 s window, so each user is
  one active session all the time. Each user takes the next of the portal's
  listener URLs (``CAPACITY_URLS``, comma-separated, as ``GET /api/health``
  lists them), so no listener holds more connections than one source
  address has ephemeral ports for.
- `Steps`: the load shape: ``CAPACITY_STEPS`` users, each reached at
  ``CAPACITY_RATE`` users/s and held ``CAPACITY_HOLD`` seconds.

Our connection pool fix (``locustfiles/connections.py``) is installed: without
it geventhttpclient's idle check cannot take descriptors >= 1024.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import itertools
import os
import random
import sys
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from locustfiles import connections  # noqa: E402

connections.install()

_URLS = [u for u in os.environ.get("CAPACITY_URLS", "").split(",") if u]
_NEXT = itertools.count(int(os.environ.get("CAPACITY_WORKER_INDEX", "0")))
_THINK = tuple(float(x) for x in os.environ.get("CAPACITY_THINK", "20,50").split(","))


class BareUser(FastHttpUser):
    """The calibration: as many requests as one process can make, nothing else."""

    @task
    def health(self) -> None:
        self.client.get("/api/health")


class SessionCitizen(FastHttpUser):
    """One signed-in citizen looking at their dossiers every 20-50 s."""

    wait_time = between(*_THINK)
    connection_timeout = 60.0
    network_timeout = 60.0

    def __init__(self, environment: Any) -> None:
        if _URLS:  # spread over the portal's listeners: each user keeps one connection to one of them
            self.host = _URLS[next(_NEXT) % len(_URLS)]
        super().__init__(environment)
        self.token = ""

    def on_start(self) -> None:
        number = f"0{random.randrange(10**10, 10**11)}"
        with self.client.post("/api/auth/vneid/otp", json={"id_number": number}, catch_response=True) as r:
            otp = r.json() if r.status_code == 200 else None
        if otp is None:
            return
        r = self.client.post("/api/auth/vneid/verify", json={"otp_request_id": otp["otp_request_id"],
                                                             "otp": otp["otp"]})
        if r.status_code == 200:
            self.token = r.json()["token"]

    @task
    def my_dossiers(self) -> None:
        if not self.token:
            self.on_start()
            return
        self.client.get("/api/dossiers", headers={"Authorization": f"Bearer {self.token}"})


class Steps(LoadTestShape):  # only when CAPACITY_STEPS is set (see the end): the calibration runs without
    """Users stepped up: each step reached at CAPACITY_RATE users/s, then held CAPACITY_HOLD s."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self.steps = [int(s) for s in os.environ.get("CAPACITY_STEPS", "").split(",") if s]
        self.rate = float(os.environ.get("CAPACITY_RATE", "200"))
        self.hold = float(os.environ.get("CAPACITY_HOLD", "90"))

    def tick(self) -> tuple[int, float] | None:
        if not self.steps:
            return None
        t, previous = self.get_run_time(), 0
        for users in self.steps:
            span = (users - previous) / self.rate + self.hold
            if t < span:
                return users, self.rate
            t -= span
            previous = users
        return None


if not os.environ.get("CAPACITY_STEPS"):
    del Steps  # Locust would use any shape it finds
