"""Start a reference portal and wait until it answers: the one way the runner, the benchmarks and the tests do it.

`PortalProcess` runs ``python -m rehearsal.portal`` (or a script serving the
same app) in its own process on 127.0.0.1, port 0: the portal writes the port
it got to a port file, and `PortalProcess.start` polls that file and then
``/api/health`` until the portal answers, so nobody sleeps a guessed number of
seconds. A portal that exits, or does not answer in time, is a `RunError`
naming its log. By default the portal dies with the process that started it
(PR_SET_PDEATHSIG), so a killed harness never leaves one serving.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from .. import PROJECT_ROOT
from ..errors import RunError
from .processes import die_with_parent, stop_process

#: Between two looks at the port file and the health page while a portal starts.
POLL_S = 0.05


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether the portal at `url` answers ``/api/health`` with 200."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


class PortalProcess:
    """One reference portal in its own process, on 127.0.0.1 and an ephemeral port.

    Its files go in `workdir`, named after `name`: ``<name>.log`` (stdout and
    stderr), ``<name>.port`` and, unless `db` is given, ``<name>.sqlite``.
    `args` are more options of ``rehearse portal`` (``--time-scale 120``,
    ``--system national``; a later ``--port N`` wins over port 0). `script`
    serves the portal instead of ``-m rehearsal.portal`` (a benchmark's
    timed portal); it must take the same ``--host/--port/--port-file/--db``.
    """

    def __init__(self, workdir: Path, *args: str, name: str = "portal", db: Path | None = None,
                 script: Path | None = None, tied: bool = True) -> None:
        self.workdir = Path(workdir).absolute()
        self.name = name
        self.db = Path(db).absolute() if db else self.workdir / f"{name}.sqlite"
        self.port_file = self.workdir / f"{name}.port"
        self.log_path = self.workdir / f"{name}.log"
        serve = [str(Path(script).absolute())] if script else ["-m", "rehearsal.portal"]
        #: The portal's command line.
        self.argv = [sys.executable, *serve, "--host", "127.0.0.1", "--port", "0", "--port-file",
                     str(self.port_file), "--db", str(self.db), *args]
        #: Whether the portal dies with this process (SIGTERM when it goes, even by kill -9; Linux).
        self.tied = tied
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> str:
        """Start the portal and return its URL once ``/api/health`` answers; `RunError` if it never does."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         preexec_fn=die_with_parent(signal.SIGTERM) if self.tied else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self.proc.returncode == -signal.SIGINT:  # Ctrl-C reached it before it reached us
                    raise KeyboardInterrupt
                raise RunError(f"the reference portal exited at start (code {self.proc.returncode}); "
                               f"see {self.log_path}")
            text = self.port_file.read_text().strip() if self.port_file.exists() else ""
            if text.isdigit():
                self.url = f"http://127.0.0.1:{int(text)}"
                if answers(self.url, timeout=1.0):
                    return self.url
            time.sleep(POLL_S)
        self.stop()
        raise RunError(f"the reference portal did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the portal (SIGTERM: it closes its database cleanly); kill it after `timeout` seconds."""
        if self.proc is not None:
            stop_process(self.proc, sig, timeout)

    def __enter__(self) -> PortalProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
