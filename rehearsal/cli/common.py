"""What every command shares: the one-line argument errors, the exit codes, the port type, the gate lines."""

from __future__ import annotations

import argparse
import enum
from typing import Any

from ..results.gates import gate_lines


class ExitCode(enum.IntEnum):
    """The exit codes of every ``rehearse`` command (DESIGN.md): defined here once."""

    GO = 0
    """Done, or every gate passed."""
    NO_GO = 1
    """A gate failed."""
    ERROR = 2
    """Bad input or a harness error (one line on stderr)."""


def exit_for(verdict: str) -> ExitCode:
    """GO → 0, NO-GO → 1, anything else (INCOMPLETE) → 2."""
    return {"GO": ExitCode.GO, "NO-GO": ExitCode.NO_GO}.get(verdict, ExitCode.ERROR)


def tcp_port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (one line, not a traceback, for -1 or 99999)."""
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535; found {text!r}")
    return int(text)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 like any bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitCode.ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def print_gates(gates: list[dict[str, Any]], indent: str = "  ") -> None:
    for line in gate_lines(gates, indent):
        print(line)
