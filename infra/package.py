"""`make package`: a deployable CloudFormation (SAM) template per stage, in infra/build/.

    python -m infra.package                      # dev and prod, with dependencies
    python -m infra.package --stage prod
    python -m infra.package --template-only      # no dependency build, no pip at all

For each stage this writes the merge template (infra/template.py) to
infra/build/<stage>.merge.json and runs

    chalice package --stage <stage> --merge-template infra/build/<stage>.merge.json infra/build/<stage>

which leaves infra/build/<stage>/sam.json and deployment.zip. Nothing here
needs AWS credentials. Chalice builds the dependencies of requirements.txt with
pip (manylinux wheels for the Lambda runtime), so a full package needs the
package index pip is configured with (PyPI, a mirror, or PIP_NO_INDEX with
PIP_FIND_LINKS pointing at a wheelhouse); Chalice caches the result in
.chalice/deployments/. `--template-only` packages a copy of the app with an
empty requirements.txt: the same template, a code-only zip, no network. Tests
use it; a release does not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from infra.functions import POLICY_NAME
from infra.template import PROJECT, merge_template

__all__ = ["package", "main", "BUILD", "STAGES", "TEMPLATE_FILE"]

BUILD = PROJECT / "infra" / "build"
STAGES = ("dev", "prod")
TEMPLATE_FILE = "sam.json"


def _chalice() -> str:
    beside_python = Path(sys.executable).with_name("chalice")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("chalice")
    if found is None:
        raise FileNotFoundError("chalice is not installed (requirements-dev.txt)")
    return found


def _stage_copy(destination: Path) -> Path:
    """The app as Chalice packages it, with no third-party requirements to build."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "deployed")
    shutil.copy2(PROJECT / "app.py", destination / "app.py")
    shutil.copytree(PROJECT / "chalicelib", destination / "chalicelib", ignore=ignore)
    shutil.copytree(PROJECT / ".chalice", destination / ".chalice", ignore=ignore)
    (destination / "requirements.txt").write_text("", encoding="utf-8")
    return destination


def package(stage: str, out: Path = BUILD, *, template_only: bool = False) -> Path:
    """Package `stage` into `out/<stage>/`; answers the template's path."""
    import app
    from chalicelib.db import all_models

    out.mkdir(parents=True, exist_ok=True)
    merge_file = out / f"{stage}.merge.json"
    merge_file.write_text(
        json.dumps(merge_template(app.app, all_models(), stage), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    stage_out = out / stage
    if stage_out.exists():
        shutil.rmtree(stage_out)
    environment = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    command = [_chalice(), "package", "--stage", stage, "--merge-template", str(merge_file.resolve()),
               str(stage_out.resolve())]
    with tempfile.TemporaryDirectory(prefix="siyu-package-") as scratch:
        project = _stage_copy(Path(scratch)) if template_only else PROJECT
        finished = subprocess.run(command, cwd=project, env=environment, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"chalice package failed for {stage}:\n{finished.stdout}\n{finished.stderr}")
    template = stage_out / TEMPLATE_FILE
    if not template.exists():
        raise RuntimeError(f"chalice package wrote no {TEMPLATE_FILE} for {stage}:\n{finished.stdout}")
    _check_roles(template)
    return template


def _check_roles(template_path: Path) -> None:
    """Every function Chalice generated has the role infra/access.py declares (the merge template
    names the functions from the imported app, so an app.py edited meanwhile shows here)."""
    resources = json.loads(template_path.read_text(encoding="utf-8"))["Resources"]

    def policy_names(function: dict) -> list[str]:
        role = resources[function["Properties"]["Role"]["Fn::GetAtt"][0]]
        return [policy["PolicyName"] for policy in role["Properties"]["Policies"]]

    undeclared = sorted(
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function" and policy_names(resource) != [POLICY_NAME]
    )
    if undeclared:
        raise RuntimeError(
            f"{template_path}: the functions {undeclared} have no role built from infra/access.py; "
            "was app.py edited while packaging? Package again."
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", action="append", choices=["local", *STAGES], help="repeatable; default dev and prod")
    parser.add_argument("--out", type=Path, default=BUILD)
    parser.add_argument("--template-only", action="store_true", help="skip building the dependencies (no pip)")
    options = parser.parse_args(argv)
    for stage in options.stage or STAGES:
        template = package(stage, options.out, template_only=options.template_only)
        print(f"{stage}: {template.relative_to(PROJECT) if template.is_relative_to(PROJECT) else template}")


if __name__ == "__main__":
    main()
