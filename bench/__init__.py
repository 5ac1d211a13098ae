"""Benchmarks: `make bench` (written to bench/out/), `make report` (the tracked bench/REPORT.md)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["output_dir"]

HERE = Path(__file__).resolve().parent
OUTPUT = "SIYU_BENCH_OUT"


def output_dir() -> Path:
    """Where this run writes its report and plots."""
    path = Path(os.environ.get(OUTPUT) or HERE / "out")
    path.mkdir(parents=True, exist_ok=True)
    return path
