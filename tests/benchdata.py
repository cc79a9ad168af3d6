"""The benchmark's pool generator (benchmarks/genpool.py), for tests that want fleet-shaped
pools: it is a script, not part of the package."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@cache
def genpool():
    spec = importlib.util.spec_from_file_location("genpool", ROOT / "benchmarks" / "genpool.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
