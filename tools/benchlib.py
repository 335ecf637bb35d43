"""What every benchmark under tools/ does with its figures: print them, and keep them as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(figures: dict[str, Any], out: str | Path) -> None:
    """Print `figures` and write them to `out` (directories created)."""
    text = json.dumps(figures, indent=1)
    print(text)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
