"""What the entry points call themselves in `--help`: the console script's name when run
as one (`notify-api`), else `python -m <module>`."""

from __future__ import annotations

import sys
from pathlib import Path


def program(module: str) -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name.startswith("notify-") else f"python -m {module}"
