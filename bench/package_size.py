"""The deployment package: the zipped size of what deploys, before and after pruning (goal at most 15 MB)."""

from __future__ import annotations

import collections
import tempfile
import zipfile
from pathlib import Path

import bench
from infra.package import GOAL_BYTES, KEPT_SERVICES, ZIP_FILE, build
from local.stack import Stack

STAGE = "prod"
TOP = 12


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.2f} MB"


def largest(zip_path: Path, top: int = TOP) -> list[tuple[str, int]]:
    """The zip's top-level entries (packages, modules, dist-info) by their zipped bytes, largest first."""
    sizes: collections.Counter[str] = collections.Counter()
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            sizes[info.filename.split("/")[0]] += info.compress_size
    return sizes.most_common(top)


def measure(stage: str = STAGE) -> tuple[int, int, int, list[tuple[str, int]]]:
    """(bytes before pruning, bytes after, services dropped, largest entries) of a real package of `stage`."""
    with tempfile.TemporaryDirectory(prefix="siyu-bench-package-") as out:
        packaged = build(stage, Path(out))
        return (packaged.pruned.before, packaged.pruned.after, len(packaged.pruned.dropped_services),
                largest(packaged.zip))


def run(stack: Stack) -> str:
    before, after, dropped, top = measure()
    verdict = "met" if after <= GOAL_BYTES else "NOT met"
    bench.figure("deployment package, zipped", f"{_megabytes(after)} (before pruning {_megabytes(before)})",
                 f"<= {_megabytes(GOAL_BYTES)}", after <= GOAL_BYTES)
    return "\n".join([
        "## Deployment package",
        "",
        f"`infra.package.build(\"{STAGE}\")`: `chalice package` with the manylinux wheels of requirements.txt, "
        f"then the pruning step; sizes of {ZIP_FILE} as it deploys (1 MB = 10^6 bytes).",
        "",
        "| | zipped |",
        "|---|---|",
        f"| before pruning | {_megabytes(before)} |",
        f"| after pruning | {_megabytes(after)} |",
        "",
        f"After pruning **{_megabytes(after)}** (goal at most {_megabytes(GOAL_BYTES)}: {verdict}). "
        f"Botocore keeps the models of {', '.join(sorted(KEPT_SERVICES))}; {dropped} other services' are left out.",
        "",
        f"Largest top-level entries after pruning ({TOP}):",
        "",
        "| entry | zipped |",
        "|---|---|",
        *[f"| {name} | {_megabytes(size)} |" for name, size in top],
    ])
