"""Child processes of the harness: tied to its life, stopped by their own id, given a free loopback port.

The run starts portals and Locust processes; whatever happens to the harness
(Ctrl-C, an error, kill -9) none of them may go on serving or sending load.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable


def die_with_parent(sig: int) -> Callable[[], None]:
    """For Popen's preexec_fn: the child gets `sig` when the harness dies, even by kill -9 (Linux).

    So a killed harness never leaves a portal serving or a Locust process
    sending load; Locust gets SIGINT and still writes its CSVs and flushes the ledger.
    """
    def set_signal() -> None:
        # A harness started in the background (`cmd &` in a script) inherits SIGINT ignored, and so
        # would its children: give them the default back, so that our SIGINT stops Locust cleanly.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # not Linux: the child outlives a killed harness, as it would anyway
    return set_signal


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Ask `proc` to stop with `sig`; kill it if it has not within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A TCP port free on the loopback now (for a Locust master the workers connect to)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
