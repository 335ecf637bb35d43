"""The one exception family of the harness.

The library raises these; only the CLI turns them into one line on stderr and
exit code 2 (`--debug` shows the traceback). The tree::

    RehearsalError                 anything the harness can explain to a person
    ├── PlanError                  a scenario / gate file is wrong (file, line, field, expected)
    │   └── GateSyntaxError        a gate expression does not parse (message only: the plan
    │                              reader re-raises it as a PlanError with file, line and field)
    ├── ConfigError                config/ (catalogue, targets) is wrong or missing
    ├── TargetError                the target is not allowed, or cannot be reached to start
    ├── PortalError                the portal answered something the harness cannot use
    └── RunError                   a run could not be started or its directory is unusable

The reference portal has its own small tree in `rehearsal.portal.errors`
(`ApiError`, `FaultSpecError`, ...): the portal imports no harness code, this
module included, so that it can be run and shipped on its own.
"""

from __future__ import annotations


class RehearsalError(Exception):
    """Base class: a problem a person can act on, said in one line."""


class PlanError(RehearsalError):
    """A scenario or gate file is wrong.

    Renders as ``file:line: field: message`` so an editor can jump to it.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.message}"


class GateSyntaxError(PlanError):
    """A gate expression that does not parse; the message says what was expected.

    Raised by `rehearsal.plan.gate_language.parse_gate` with the message only; the plan
    reader catches it and raises a `PlanError` naming the file, the line and the field.
    """


class ConfigError(RehearsalError):
    """A file under config/ is wrong or missing."""


class TargetError(RehearsalError):
    """The target portal is not allowed or cannot be used."""


class PortalError(RehearsalError):
    """The portal answered something the harness cannot use."""


class RunError(RehearsalError):
    """A run could not be started, or its run directory is unusable."""
