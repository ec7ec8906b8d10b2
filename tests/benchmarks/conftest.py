"""The benchmarks are scripts run from their own folder (``python benchmarks/run.py``):
their modules import each other by bare name, so the folder goes on the path."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
