"""PNG plots for the bench report: line charts and bar charts with matplotlib.

matplotlib is imported inside the functions (Agg backend, no display), so
importing a bench module costs nothing until it draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["lines", "bars"]

_SIZE = (10, 6)
_DPI = 120


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def _points(name: str, points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for point in points:
        try:
            x, y = point
            xs.append(float(x))
            ys.append(float(y))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"series {name!r}: expected a list of (x, y) numbers, got {point!r}") from exc
    return xs, ys


def _save(pyplot: Any, figure: Any, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    pyplot.close(figure)
    return path


def lines(
    path: Path | str,
    title: str,
    xlabel: str,
    ylabel: str,
    series: dict[str, list[tuple[float, float]]],
    hline: float | None = None,
    *,
    logy: bool = False,
) -> Path:
    """One line per series of (x, y) points, an optional dashed horizontal line at `hline`; returns the path."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=_SIZE)
    colours = pyplot.get_cmap("tab20").colors
    for index, (name, points) in enumerate(series.items()):
        xs, ys = _points(name, points)
        # The palette repeats after its 20 colours: the second round is dashed.
        linestyle = "-" if index < len(colours) else "--"
        axes.plot(xs, ys, label=name, color=colours[index % len(colours)], linestyle=linestyle)
    if hline is not None:
        axes.axhline(hline, color="black", linestyle="--", linewidth=1)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logy:
        axes.set_yscale("log")
    axes.grid(True, which="major", alpha=0.3)
    if series:
        axes.legend(fontsize=7, ncol=2)
    return _save(pyplot, figure, path)


def bars(
    path: Path | str,
    title: str,
    xlabel: str,
    ylabel: str,
    values: dict[str, float],
    goal: float | None = None,
) -> Path:
    """One bar per name, an optional dashed goal line; returns the path."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=_SIZE)
    names = list(values)
    axes.bar(names, [float(values[name]) for name in names], color="tab:blue")
    if goal is not None:
        axes.axhline(goal, color="tab:red", linestyle="--", linewidth=1, label=f"goal {goal:g}")
        axes.legend(fontsize=8)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.tick_params(axis="x", labelrotation=30, labelsize=8)
    axes.grid(True, axis="y", alpha=0.3)
    return _save(pyplot, figure, path)
