"""The adapters: one small client per kind of system the people talk to.

- `NationalPortal`: citizens on the national portal (VNeID, catalogue, file, pay, follow, supplement, withdraw).
- `CityPortal`: the same journey on a city's (or former province's) own portal, in its own API shape.
- `OneStop`: officers on a provincial one-stop system (sign-in, queue, each step of the chain).

A target names the adapter of each of its systems (``config/targets.yaml``:
``adapter: national``, or ``module:Class`` for one a team wrote for its own
system); `adapter_class` finds it. docs/targets.md walks through writing one.
"""

from __future__ import annotations

import importlib

from locustfiles.clients.base import Dossier, SystemClient
from locustfiles.clients.city import CityPortal
from locustfiles.clients.national import NationalPortal
from locustfiles.clients.onestop import OneStop, QueueItem

__all__ = ["ADAPTERS", "CityPortal", "Dossier", "NationalPortal", "OneStop", "QueueItem", "SystemClient",
           "adapter_class"]

#: The adapters that ship, by the name a target gives them.
ADAPTERS: dict[str, type[SystemClient]] = {"national": NationalPortal, "city": CityPortal, "onestop": OneStop}


def adapter_class(name: str) -> type[SystemClient]:
    """The adapter a target names: one of `ADAPTERS`, or ``package.module:Class``; ValueError if there is none."""
    if name in ADAPTERS:
        return ADAPTERS[name]
    module, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"unknown adapter {name!r} (expected one of {', '.join(ADAPTERS)} or module:Class)")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"adapter {name!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, SystemClient)):
        raise ValueError(f"adapter {name!r} is not a SystemClient")
    return found
