"""Make the soak module (``tests/soak``, not a package) importable here."""

from __future__ import annotations

import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "soak"
if str(SOAK) not in sys.path:
    sys.path.insert(0, str(SOAK))
