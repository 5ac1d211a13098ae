"""Benchmarks: `make bench` (written to bench/out/), `make report` (the tracked bench/REPORT.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["output_dir", "figure", "figures", "Figure"]

HERE = Path(__file__).resolve().parent
OUTPUT = "SIYU_BENCH_OUT"


@dataclass(frozen=True)
class Figure:
    """One measured figure beside its goal, for the report's summary table."""

    name: str
    measured: str
    goal: str
    met: bool | None  # None: no goal to meet, the figure is shown for what it is


_figures: list[Figure] = []


def figure(name: str, measured: str, goal: str = "", met: bool | None = None) -> None:
    """Put a figure of this run in the report's summary table (sections call it as they measure)."""
    _figures.append(Figure(name, measured, goal, met))


def figures() -> list[Figure]:
    return list(_figures)


def output_dir() -> Path:
    """Where this run writes its report and plots."""
    path = Path(os.environ.get(OUTPUT) or HERE / "out")
    path.mkdir(parents=True, exist_ok=True)
    return path
