"""Bench-only: geventhttpclient's idle-connection check without select(), put on PYTHONPATH by capacity.py --client-fix.

geventhttpclient 2.6 checks a pooled keep-alive socket with
``select.select([sock], [], [], 0.0)`` before reusing it. ``select`` cannot
take a descriptor of 1024 or more (ValueError, which the check swallows as
"dead"), so in a Locust process with more than ~1,000 connections almost
every request throws its connection away and opens a new one. This module
replaces the check with a non-blocking ``recv(MSG_PEEK)`` on the raw socket
(nothing to read: alive; a FIN or stray bytes: not), the moment
``geventhttpclient.connectionpool`` is imported. It changes nothing else, and
only in processes started with this directory on PYTHONPATH.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import socket
import sys
from typing import Any

TARGET = "geventhttpclient.connectionpool"


def _is_socket_alive(self: Any, sock: Any) -> bool:
    if sock is None:
        return False
    try:
        if sock.fileno() < 0:
            return False
        raw = getattr(sock, "_sock", sock)
        raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return False  # readable while idle: closed by the peer, or bytes nobody asked for
    except BlockingIOError:
        return True
    except (OSError, ValueError):
        return False


class _Patch(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def patched(module: Any) -> None:
            exec_module(module)
            module.ConnectionPool._is_socket_alive = _is_socket_alive

        spec.loader.exec_module = patched  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _Patch())
