"""P1: the cold import of the app against botocore's session, fresh processes, alternated."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench
from local.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
RUNS = 11
GOAL = 1.3


def _seconds(statement: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], cwd=ROOT, check=True)
    return time.perf_counter() - started


def measure(runs: int = RUNS) -> tuple[float, float]:
    """Medians of `import app` and `import botocore.session`, each run in a fresh process."""
    app_times, botocore_times = [], []
    _seconds("import app")  # warm the filesystem cache and the bytecode for both sides
    _seconds("import botocore.session")
    for _ in range(runs):
        app_times.append(_seconds("import app"))
        botocore_times.append(_seconds("import botocore.session"))
    return statistics.median(app_times), statistics.median(botocore_times)


def run(stack: Stack) -> str:
    app_median, botocore_median = measure()
    ratio = app_median / botocore_median
    verdict = "met" if ratio <= GOAL else "NOT met"
    bench.figure("P1 cold import: `import app` / `import botocore.session`", f"{ratio:.2f}", f"<= {GOAL}",
                 ratio <= GOAL)
    return "\n".join([
        "## P1: cold import",
        "",
        f"`python -c \"import app\"` against `python -c \"import botocore.session\"`, fresh processes, "
        f"alternated, medians of {RUNS}.",
        "",
        "| command | median |",
        "|---|---|",
        f"| import app | {app_median * 1000:.0f} ms |",
        f"| import botocore.session | {botocore_median * 1000:.0f} ms |",
        "",
        f"Ratio **{ratio:.2f}** (goal at most {GOAL}: {verdict}).",
    ])
