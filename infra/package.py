"""`make package`: a deployable CloudFormation (SAM) template per stage, in infra/build/.

    python -m infra.package                      # dev and prod, with dependencies
    python -m infra.package --stage prod
    python -m infra.package --template-only      # no dependency build, no pip at all

For each stage this writes the merge template (infra/template.py) to
infra/build/<stage>.merge.json and runs

    chalice package --stage <stage> --merge-template infra/build/<stage>.merge.json infra/build/<stage>

which leaves infra/build/<stage>/sam.json and deployment.zip; then rewrites the zip
without the botocore service models (botocore/data/<service>/) of every service
outside KEPT_SERVICES, type stubs (*.pyi) and __pycache__/, and prints its size
(docs/decisions.md, "The deployment zip keeps the pinned botocore"). Nothing here
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
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.functions import POLICY_NAME
from infra.template import PROJECT, merge_template

__all__ = [
    "package", "build", "prune", "main", "Packaged", "Pruned",
    "BUILD", "STAGES", "TEMPLATE_FILE", "ZIP_FILE", "KEPT_SERVICES", "GOAL_BYTES",
]

BUILD = PROJECT / "infra" / "build"
STAGES = ("dev", "prod")
TEMPLATE_FILE = "sam.json"
ZIP_FILE = "deployment.zip"
GOAL_BYTES = 15_000_000  # at most 15 MB zipped (decimal megabytes, the stricter reading)

# The botocore services the deployed code creates a client for, and who creates it. Every other
# service's model (botocore/data/<service>/) is left out of the zip, so a client on any other
# service fails on Lambda with UnknownServiceError: tests/test_package_contents.py scans
# app.py and chalicelib/ for client creations and fails when one names a service not here.
KEPT_SERVICES: Mapping[str, str] = {
    "dynamodb": "pynamodb models and chalicelib.db.connection(); Powertools idempotency (chalicelib/idempotency.py)",
    "stepfunctions": "chalicelib/aws.py stepfunctions()",
    "ssm": "Powertools parameters.get_parameter (chalicelib/config.py)",
    "xray": "aws_xray_sdk.core creates its sampling client on import (Powertools Tracer, chalicelib/observability.py)",
    "sts": "botocore's credential chain (assume-role and web-identity providers)",
}
_MODELS = "botocore/data/"


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


@dataclass(frozen=True)
class Pruned:
    """What `prune` did to a zip: sizes in bytes of the whole file, before and after."""

    before: int
    after: int
    dropped_services: tuple[str, ...]
    dropped_files: int


@dataclass(frozen=True)
class Packaged:
    template: Path
    zip: Path
    pruned: Pruned


def _service_of(name: str) -> str | None:
    """The botocore service whose model `name` is part of (botocore/data/<service>/...), if it is one's:
    botocore/data/<file> (endpoints.json, partitions.json, _retry.json, ...) is no service's."""
    if not name.startswith(_MODELS):
        return None
    service, slash, _ = name[len(_MODELS):].partition("/")
    return service if slash else None


def _dropped(name: str, kept: Mapping[str, str]) -> bool:
    if name.endswith(".pyi"):
        return True  # type stubs: nothing imports them at runtime
    if "__pycache__/" in name:
        # Bytecode of the working tree (tests ran there): each .pyc records its source's mtime, the
        # zip gives every source 1980-01-01, so Python never uses one and compiles the source anyway.
        return True
    service = _service_of(name)
    return service is not None and service not in kept


def prune(zip_path: Path, kept: Mapping[str, str] = KEPT_SERVICES) -> Pruned:
    """Rewrite `zip_path` in place without the models of services outside `kept`, *.pyi and __pycache__/.

    Entries keep their order, names, timestamps, permissions and compression method (deflate at
    zlib's default level, as Chalice writes them), so the same input gives the same bytes. A zip
    with botocore in it must hold every kept service's model: a renamed or misspelled service
    fails here, not on Lambda.
    """
    before = zip_path.stat().st_size
    with zipfile.ZipFile(zip_path) as source:
        infos = source.infolist()
        present = {service for info in infos if (service := _service_of(info.filename))}
        if present and not set(kept) <= present:
            raise RuntimeError(f"{zip_path}: botocore has no model for {sorted(set(kept) - present)}")
        dropped = {info.filename for info in infos if _dropped(info.filename, kept)}
        if not dropped:
            return Pruned(before, before, (), 0)
        scratch = zip_path.with_name(zip_path.name + ".pruning")
        try:
            with zipfile.ZipFile(scratch, "w") as target:
                for info in infos:
                    if info.filename in dropped:
                        continue
                    copied = zipfile.ZipInfo(info.filename, info.date_time)
                    copied.compress_type = info.compress_type
                    copied.external_attr = info.external_attr
                    copied.create_system = info.create_system
                    target.writestr(copied, source.read(info))
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise
    os.replace(scratch, zip_path)
    services = sorted({service for name in dropped if (service := _service_of(name))})
    return Pruned(before, zip_path.stat().st_size, tuple(services), len(dropped))


def package(stage: str, out: Path = BUILD, *, template_only: bool = False) -> Path:
    """Package `stage` into `out/<stage>/`; answers the template's path."""
    return build(stage, out, template_only=template_only).template


def build(stage: str, out: Path = BUILD, *, template_only: bool = False) -> Packaged:
    """Package `stage` into `out/<stage>/` and prune its zip; answers the paths and sizes."""
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
    deployment = stage_out / ZIP_FILE
    return Packaged(template, deployment, prune(deployment))


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
        packaged = build(stage, options.out, template_only=options.template_only)
        template = packaged.template
        pruned = packaged.pruned
        print(f"{stage}: {template.relative_to(PROJECT) if template.is_relative_to(PROJECT) else template}; "
              f"{ZIP_FILE} {_megabytes(pruned.after)} zipped, goal at most {_megabytes(GOAL_BYTES)} "
              f"({_megabytes(pruned.before)} before dropping {pruned.dropped_files} files: "
              f"the models of {len(pruned.dropped_services)} botocore services, stubs, bytecode)")


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


if __name__ == "__main__":
    main()
