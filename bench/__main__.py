"""`make bench`: every benchmark in one run, written to bench/out/REPORT.md.

`python -m bench --report` (`make report`) writes the tracked bench/REPORT.md
and its plots instead; arguments name the sections to run (all by default).

Each section module has `run(stack) -> str` (markdown). Timings are ratios
taken side by side in the same run, because shared machines are noisy.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import sys

import bench
from local.dynamodb_local import free_port
from local.stack import Stack

SECTIONS = [
    "bench.cold_import",
    "bench.cold_request",
    "bench.members",
    "bench.appointments",
    "bench.coupons",
    "bench.points",
    "bench.orders",
    "bench.jobs",
    "bench.load",
    "bench.package_size",
    "bench.capacity",
]

def _summary(found: list[bench.Figure]) -> str:
    verdicts = {True: "met", False: "**NOT met**", None: "-"}
    lines = ["## Every figure beside its goal", "", "| figure | measured | goal | verdict |", "|---|---|---|---|"]
    lines += [f"| {f.name} | {f.measured} | {f.goal or '-'} | {verdicts[f.met]} |" for f in found]
    return "\n".join(lines) + "\n"


def main() -> None:
    arguments = sys.argv[1:]
    if "--report" in arguments:
        arguments.remove("--report")
        os.environ[bench.OUTPUT] = str(bench.HERE)
    wanted = arguments
    report = bench.output_dir() / "REPORT.md"
    stack = Stack(api_port=free_port(), sandbox_port=free_port(), table_prefix=f"bench{os.getpid()}-", seed=False)
    stack.start()
    header = [
        "# siyu benchmarks",
        "",
        f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; DynamoDB Local for every table.",
        "",
    ]
    parts = []
    try:
        for name in SECTIONS:
            if wanted and not any(w in name for w in wanted):
                continue
            print(f"running {name} ...", flush=True)
            parts.append(importlib.import_module(name).run(stack).rstrip() + "\n")
    finally:
        stack.stop()
    report.write_text("\n".join([*header, _summary(bench.figures()), *parts]))
    print(report.read_text())


if __name__ == "__main__":
    main()
