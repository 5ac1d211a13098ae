"""checkov on the packaged templates, judged against the justified skips in infra/checkov-skips.yaml.

    python -m infra.checkov_scan infra/build/dev/sam.json infra/build/prod/sam.json

checkov runs from its own virtualenv (`.venv-checkov`, made by `make test`):
it pins many packages the project's own environment must not have to agree
with. It runs without its skip options; a finding is skipped here when an
entry of the list covers its check, resource and stage, so one entry can be
as narrow as "this check, on these functions" and a stale entry shows.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from infra.stage import PROJECT

__all__ = ["CHECKOV", "SKIPS_FILE", "Finding", "Skip", "Report", "load_skips", "scan", "main"]

CHECKOV = PROJECT / ".venv-checkov" / "bin" / "checkov"
SKIPS_FILE = PROJECT / "infra" / "checkov-skips.yaml"


@dataclass(frozen=True)
class Finding:
    check: str
    resource: str  # the CloudFormation resource name
    stage: str


@dataclass(frozen=True)
class Skip:
    check: str
    reason: str
    resources: tuple[str, ...] = ("*",)
    stages: tuple[str, ...] = ()

    def covers(self, finding: Finding) -> bool:
        return (
            finding.check == self.check
            and any(fnmatch.fnmatchcase(finding.resource, pattern) for pattern in self.resources)
            and (not self.stages or finding.stage in self.stages)
        )


@dataclass
class Report:
    passed: int
    failed: list[Finding] = field(default_factory=list)
    skipped: list[Finding] = field(default_factory=list)
    unused: list[Skip] = field(default_factory=list)

    def summary(self) -> str:
        return f"checkov: {self.passed} passed, {len(self.failed)} failed, {len(self.skipped)} skipped"


def load_skips(path: Path = SKIPS_FILE) -> list[Skip]:
    skips = []
    for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
        if not str(entry.get("reason", "")).strip():
            raise ValueError(f"{path}: the skip of {entry.get('check')} gives no reason")
        skips.append(Skip(
            check=entry["check"],
            reason=entry["reason"],
            resources=tuple(entry.get("resources", ["*"])),
            stages=tuple(entry.get("stages", [])),
        ))
    return skips


def _run_checkov(templates: Sequence[Path], checkov: Path) -> dict:
    command = [str(checkov), "--framework", "cloudformation", "--output", "json", "--soft-fail", "--skip-download"]
    for template in templates:
        command += ["--file", str(template)]
    # No call home: no guidelines download (--skip-download), no version check.
    environment = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment)
    if finished.returncode != 0:
        raise RuntimeError(f"checkov failed:\n{finished.stdout[-2000:]}\n{finished.stderr[-2000:]}")
    return json.loads(finished.stdout)


def scan(templates: Mapping[str, Path], skips: Sequence[Skip], checkov: Path = CHECKOV) -> Report:
    """checkov's verdict on each stage's template (`{"dev": path, ...}`), with `skips` applied."""
    if not checkov.exists():
        raise FileNotFoundError(f"{checkov} is missing; `make test` installs it")
    stage_of = {str(path.resolve()): stage for stage, path in templates.items()}
    results = _run_checkov(list(templates.values()), checkov)
    report = Report(passed=results["summary"]["passed"])
    used: set[Skip] = set()
    for result in results["results"]["failed_checks"]:
        finding = Finding(result["check_id"], result["resource"].split(".", 1)[1], stage_of[result["file_abs_path"]])
        skip = next((skip for skip in skips if skip.covers(finding)), None)
        if skip is None:
            report.failed.append(finding)
        else:
            report.skipped.append(finding)
            used.add(skip)
    report.unused = [skip for skip in skips if skip not in used]
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.checkov_scan", description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="+", type=Path, help="infra/build/<stage>/sam.json")
    options = parser.parse_args(argv)
    report = scan({path.parent.name: path for path in options.templates}, load_skips())
    for finding in report.failed:
        print(f"FAILED {finding.check} {finding.resource} ({finding.stage})")
    for skip in report.unused:
        print(f"UNUSED skip {skip.check} {list(skip.resources)}")
    print(report.summary())
    raise SystemExit(1 if report.failed or report.unused else 0)


if __name__ == "__main__":
    main()
