"""The deployment zip keeps the botocore service models the app needs, and only those.

`infra.package.prune` rewrites the zip Chalice builds without the models of the
services outside `KEPT_SERVICES`. Here the pruning is applied to a zip of this
virtualenv's own botocore and boto3 (stored, not deflated, so it takes a second),
and the pruned tree is put first on sys.path of a fresh interpreter that creates
every client the app creates, the way the app creates it, and imports every
module of the app. The code is scanned for client creations, so a client on a
service that is not kept fails here instead of on Lambda. No network, no pip.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

import boto3
import botocore
import pytest

from infra.package import KEPT_SERVICES, prune

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]

# Calls that create a client on the service named by their first argument (or `service_name=`).
CREATORS = {"client", "resource", "create_client"}

# Third-party code the app calls that creates clients of its own: a name the app uses -> the service.
LIBRARY_CLIENTS = {
    "pynamodb": "dynamodb",  # every Model and Connection
    "DynamoDBPersistenceLayer": "dynamodb",
    "get_parameter": "ssm", "get_parameters": "ssm", "get_parameters_by_name": "ssm", "SSMProvider": "ssm",
    "get_secret": "secretsmanager", "get_secrets_by_name": "secretsmanager", "set_secret": "secretsmanager",
    "SecretsProvider": "secretsmanager",
    "get_app_config": "appconfigdata", "AppConfigProvider": "appconfigdata",
    "DynamoDBProvider": "dynamodb",
    "Tracer": "xray",  # aws_xray_sdk.core creates its sampling client on import
    "aws_xray_sdk": "xray",
    "S3SeekableIO": "s3", "s3_object_event": "s3",
}

# Kept though no code of ours names it: botocore's credential chain (assume-role, web identity).
CREDENTIAL_CHAIN = {"sts"}

# A service the app never uses: its model must be gone from the pruned zip.
DROPPED_PROBE = "s3"


def _first_service(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "service_name":
            return keyword.value
    return call.args[0] if call.args else None


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def named_services(sources: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """Service -> the files that create a client on it, from (file name, source) pairs.

    A function that passes one of its own parameters on as the service (chalicelib/aws.py's
    `_client(service, ...)`) is itself a creator, to any depth. A creator called with anything
    but a string literal elsewhere cannot be checked, so it is an error.
    """
    trees = [(name, ast.parse(source, name)) for name, source in sources]
    creators, helpers = set(CREATORS), set()
    changed = True
    while changed:
        changed = False
        for _, tree in trees:
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or function.name in creators:
                    continue
                parameters = {argument.arg for argument in function.args.args + function.args.kwonlyargs}
                for call in ast.walk(function):
                    if isinstance(call, ast.Call) and _callee(call) in creators:
                        service = _first_service(call)
                        if isinstance(service, ast.Name) and service.id in parameters:
                            creators.add(function.name)
                            helpers.add(function.name)
                            changed = True
                            break
    found: dict[str, set[str]] = {}
    unknown = []
    for name, tree in trees:
        forwarding = {
            id(call)
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) and function.name in helpers
            for call in ast.walk(function)
            if isinstance(call, ast.Call)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _callee(node) in creators:
                service = _first_service(node)
                if isinstance(service, ast.Constant) and isinstance(service.value, str):
                    found.setdefault(service.value, set()).add(name)
                elif id(node) not in forwarding:
                    unknown.append(f"{name}:{node.lineno}")
            used = None
            if isinstance(node, ast.Name):
                used = node.id
            elif isinstance(node, ast.Attribute):
                used = node.attr
            elif isinstance(node, ast.alias):
                used = node.name
            elif isinstance(node, ast.ImportFrom):
                used = node.module
            for part in (used or "").split("."):
                if part in LIBRARY_CLIENTS:
                    found.setdefault(LIBRARY_CLIENTS[part], set()).add(name)
    if unknown:
        raise AssertionError(f"clients created on a service that is not a string literal: {unknown}")
    return found


def shipped_sources() -> list[tuple[str, str]]:
    return [(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")) for path in SHIPPED]


def test_the_scan_sees_clients_direct_forwarded_and_through_libraries() -> None:
    sources = [
        ("a.py", "import boto3\nboto3.client('s3')\nboto3.session.Session().resource(service_name='sqs')\n"),
        ("b.py", "def _make(service, region):\n    return boto3.client(service, region_name=region)\n"
                 "def _again(name):\n    return _make(name, 'x')\n"
                 "def kinesis():\n    return _again('kinesis')\n"),
        ("c.py", "from aws_lambda_powertools.utilities import parameters\nparameters.get_secret('x')\n"),
        ("d.py", "from pynamodb.models import Model\n"),
    ]
    assert named_services(sources) == {
        "s3": {"a.py"}, "sqs": {"a.py"}, "kinesis": {"b.py"}, "secretsmanager": {"c.py"}, "dynamodb": {"d.py"},
    }
    with pytest.raises(AssertionError, match="e.py:2"):
        named_services([("e.py", "import boto3\nboto3.client(SERVICE)\n")])


def test_kept_services_are_exactly_the_ones_the_code_needs() -> None:
    named = named_services(shipped_sources())
    missing = {service: sorted(files) for service, files in named.items() if service not in KEPT_SERVICES}
    assert not missing, f"add these to infra.package.KEPT_SERVICES, or the zip has no model for them: {missing}"
    unused = set(KEPT_SERVICES) - set(named) - CREDENTIAL_CHAIN
    assert not unused, f"nothing in app.py or chalicelib/ needs {sorted(unused)}: drop it from KEPT_SERVICES"
    # What the scan must see today: a scan that found nothing would pass the first assertion.
    assert {"dynamodb", "stepfunctions", "ssm", "xray"} <= set(named)
    assert "chalicelib/aws.py" in named["stepfunctions"]


def _zip_of_installed_sdk(path: Path) -> Path:
    """botocore and boto3 as installed here, stored uncompressed (pruning keeps each entry's method)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for module in (botocore, boto3):
            package_dir = Path(module.__file__).parent
            for file in sorted(package_dir.rglob("*")):
                if file.is_file() and "__pycache__" not in file.parts:
                    archive.write(file, file.relative_to(package_dir.parent).as_posix())
        # What a working tree adds that never runs: bytecode stamped with a source mtime the zip resets, stubs.
        archive.writestr("boto3/__pycache__/session.cpython-311.pyc", b"stale")
        archive.writestr("boto3/session.pyi", "def f() -> None: ...\n")
    return path


def _services(names: Iterable[str]) -> set[str]:
    return {name.split("/")[2] for name in names if name.startswith("botocore/data/") and name.count("/") >= 3}


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the pruned zip, the tree it unpacks to)."""
    work = tmp_path_factory.mktemp("package")
    archive = _zip_of_installed_sdk(work / "deployment.zip")
    result = prune(archive)
    assert DROPPED_PROBE in result.dropped_services
    assert result.after < result.before / 3
    tree = work / "tree"
    with zipfile.ZipFile(archive) as unpack:
        unpack.extractall(tree)
    return archive, tree


def test_the_pruned_zip_holds_the_kept_models_and_botocores_own_files(pruned: tuple[Path, Path]) -> None:
    archive, _ = pruned
    installed = Path(botocore.__file__).parent / "data"
    with zipfile.ZipFile(archive) as reading:
        infos = reading.infolist()
    names = {info.filename for info in infos}
    assert _services(names) == set(KEPT_SERVICES)
    assert not [name for name in names if name.startswith(f"botocore/data/{DROPPED_PROBE}/")]
    for top in installed.iterdir():
        if top.is_file():
            assert f"botocore/data/{top.name}" in names  # endpoints.json, partitions.json, _retry.json, ...
    for service in KEPT_SERVICES:
        expected = {f"botocore/data/{service}/{file.relative_to(installed / service).as_posix()}"
                    for file in (installed / service).rglob("*") if file.is_file()}
        assert expected <= names, service
    assert not [name for name in names if name.endswith(".pyi") or "__pycache__" in name]
    assert {info.compress_type for info in infos} == {zipfile.ZIP_STORED}
    assert "botocore/session.py" in names and "boto3/data/dynamodb/2012-08-10/resources-1.json" in names


def test_pruning_is_deterministic_and_idempotent(pruned: tuple[Path, Path], tmp_path: Path) -> None:
    archive, _ = pruned
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(first, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    second.write_bytes(first.read_bytes())
    smaller = {service: "" for service in KEPT_SERVICES if service != "xray"}
    assert prune(first, smaller).dropped_services == ("xray",)
    prune(second, smaller)
    assert first.read_bytes() == second.read_bytes()
    assert prune(first, smaller).dropped_files == 0
    with zipfile.ZipFile(first) as reading:
        assert {info.compress_type for info in reading.infolist()} == {zipfile.ZIP_DEFLATED}
    with pytest.raises(RuntimeError, match="no model for \\['nosuchservice'\\]"):
        prune(first, {**smaller, "nosuchservice": ""})


PROBE = r"""
import importlib, json, pkgutil, sys

tree, kept, dropped = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
sys.path.insert(0, tree)
import boto3, botocore
from botocore.exceptions import UnknownServiceError

assert botocore.__file__.startswith(tree) and boto3.__file__.startswith(tree), (botocore.__file__, boto3.__file__)
session = boto3.session.Session()
for service in kept:
    session.client(service, region_name="us-east-1")
try:
    session.client(dropped, region_name="us-east-1")
except UnknownServiceError:
    pass
else:
    raise AssertionError(f"{dropped} has a model in the pruned tree")

# The clients as the app and its libraries create them.
from chalicelib import aws, db
aws.stepfunctions()
db.connection().client  # pynamodb's botocore client (dynamodb)
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
parameters.SSMProvider()
DynamoDBPersistenceLayer(table_name="probe")
from chalicelib.observability import tracer
tracer().provider  # imports aws_xray_sdk.core, whose recorder creates an xray client

# Every module the handlers may load, the models among them.
import app, chalicelib
for found in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(found.name)
assert db.all_models()
assert app.app
print("probe ok")
"""


def _probe(tree: Path, kept: Iterable[str]) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("AWS_", "SIYU_", "POWERTOOLS_", "PYTHON"))
    }
    environment.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
        SIYU_STAGE="local",
    )
    return subprocess.run(
        [sys.executable, "-c", PROBE, str(tree), json.dumps(sorted(kept)), DROPPED_PROBE],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )


def test_the_app_creates_its_clients_and_imports_on_the_pruned_sdk(pruned: tuple[Path, Path]) -> None:
    _, tree = pruned
    finished = _probe(tree, KEPT_SERVICES)
    assert finished.returncode == 0, finished.stderr
    assert "probe ok" in finished.stdout


@pytest.mark.parametrize("service", sorted(set(KEPT_SERVICES) - CREDENTIAL_CHAIN))
def test_the_probe_fails_without_a_kept_service(pruned: tuple[Path, Path], tmp_path: Path, service: str) -> None:
    """The probe exercises what each kept service is kept for: without its model it fails."""
    archive, _ = pruned
    smaller = tmp_path / "smaller.zip"
    smaller.write_bytes(archive.read_bytes())
    kept = {name: "" for name in KEPT_SERVICES if name != service}
    prune(smaller, kept)
    with zipfile.ZipFile(smaller) as unpack:
        unpack.extractall(tmp_path / "tree")
    finished = _probe(tmp_path / "tree", kept)
    assert finished.returncode != 0
    assert "UnknownServiceError" in finished.stderr and f"'{service}'" in finished.stderr, finished.stderr
