#!/usr/bin/env python3
"""The cutover on a real load balancer: nginx in front of the legacy portal, switched to the national one.

What an ops team does on the night, on loopback: nginx (Debian's package)
proxies the public address to the legacy (city) portal; at the switch the
legacy portal is closed (503 with Retry-After, so nothing is written to it
any more), its dossiers are migrated to the national portal, and nginx's
upstream is rewritten and reloaded (``nginx -s reload``: a graceful reload,
old workers finish the requests they hold). Users keep the same address; the
national portal does not know their sessions, so they sign in again.

    python tools/cutover_nginx.py --legacy http://127.0.0.1:8001 --national http://127.0.0.1:8002 \\
        --listen 127.0.0.1:8080 --switch-after 60 --record reports/nginx-cutover.json

starts nginx, switches after 60 s, keeps serving until Ctrl-C, and writes
the switch's figures (when the legacy portal closed, migration counts and
seconds, reload seconds) to ``--record`` and stdout. Pair them with the
run's ledger for the interruption window (`rehearsal.results.cutover.interruption`).
Only loopback addresses are accepted: this is a rehearsal tool.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rehearsal.run.migration import admin_call, migrate  # noqa: E402
from rehearsal.run.targets import is_loopback  # noqa: E402

CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    upstream portal {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://portal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 120s;
        }}
    }}
}}
"""


def _hostport(url: str) -> str:
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname or not parts.port:
        raise SystemExit(f"cutover_nginx: expected host:port or http://host:port; found {url!r}")
    if not is_loopback(parts.hostname):
        raise SystemExit(f"cutover_nginx: refusing {parts.hostname}: not loopback")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}"


def find_nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not path:
        raise SystemExit("cutover_nginx: nginx is not installed (Debian: apt-get install nginx-light)")
    return path


class NginxSwitch:
    """One nginx master on loopback, in its own directory, with one upstream it can switch."""

    def __init__(self, upstream: str, listen: str, workdir: Path | None = None) -> None:
        self.upstream = _hostport(upstream)
        self.listen = _hostport(listen)
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="nginx-cutover-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.nginx = find_nginx()

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def _write(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # As root, nginx would run its workers as nobody/www-data, who cannot use a private work directory:
        # keep them as the user who started it (this is a loopback rehearsal tool, not a public server).
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(CONF.format(user=user, dir=self.dir, upstream=self.upstream,
                                                         listen=self.listen))

    def _nginx(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.nginx, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), *args],
                              capture_output=True, text=True, timeout=30)

    def start(self, timeout: float = 15.0) -> str:
        self._write()
        check = self._nginx("-t")
        if check.returncode != 0:
            raise SystemExit(f"cutover_nginx: bad nginx configuration: {check.stderr.strip()}")
        self.proc = subprocess.Popen([self.nginx, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=(self.dir / "stderr.log").open("ab"))
        host, port = self.listen.rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"cutover_nginx: nginx exited: {(self.dir / 'error.log').read_text()[-500:]}")
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=0.5).close()
                return self.url
            except OSError:
                time.sleep(0.05)
        raise SystemExit("cutover_nginx: nginx did not start listening")

    def switch(self, upstream: str) -> float:
        """Point nginx at `upstream` with a graceful reload; the seconds until the new workers run."""
        self.upstream = _hostport(upstream)
        self._write()
        t0 = time.perf_counter()
        result = self._nginx("-s", "reload")
        if result.returncode != 0:
            raise SystemExit(f"cutover_nginx: reload failed: {result.stderr.strip()}")
        return time.perf_counter() - t0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cutover(lb: NginxSwitch, legacy: str, national: str, *, retry_after_s: int = 5,
            admin_token: str | None = None) -> dict[str, Any]:
    """Close legacy, migrate to national, reload nginx onto national; the figures."""
    record: dict[str, Any] = {"legacy": legacy, "national": national, "balancer": lb.url}
    # Closed with the balancer's own address as the new one: users stay on it and sign in again.
    admin_call(legacy, "POST", "/api/admin/close", {"mode": "503", "moved_to": lb.url, "retry_after_s": retry_after_s},
               token=admin_token)
    record["closed_at"] = time.time()
    record.update(migrate(legacy, national, token=admin_token))
    record["migrated_at"] = time.time()
    record["reload_s"] = round(lb.switch(national), 4)
    record["switched_at"] = time.time()
    record["migration_s"] = round(record["migrated_at"] - record["closed_at"], 4)
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--legacy", required=True, help="legacy portal URL (loopback)")
    p.add_argument("--national", required=True, help="national portal URL (loopback)")
    p.add_argument("--listen", default="127.0.0.1:8080", help="address nginx listens on (loopback)")
    p.add_argument("--switch-after", type=float, default=60.0, help="seconds before the switch")
    p.add_argument("--record", default=None, help="write the switch's figures here (JSON)")
    p.add_argument("--admin-token-env", default="REHEARSAL_ADMIN_TOKEN")
    args = p.parse_args(argv)
    lb = NginxSwitch(args.legacy, args.listen)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"nginx on {lb.start()} -> {args.legacy}; switching to {args.national} in {args.switch_after:g} s",
          flush=True)
    try:
        time.sleep(args.switch_after)
        record = cutover(lb, args.legacy, args.national, admin_token=os.environ.get(args.admin_token_env))
        summary = {k: v for k, v in record.items() if k != "ids"}
        print(json.dumps(summary), flush=True)
        if args.record:
            Path(args.record).write_text(json.dumps(record, indent=1))
        while True:  # keep serving on the national portal until told to stop
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        lb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
