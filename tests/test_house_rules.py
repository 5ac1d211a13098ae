"""Rules of the house checked, not remembered: dependency direction, masking, lazy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from chalicelib.observability import mask

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_imports_follow_the_allowed_edges_between_layers_and_domains():
    """The contracts in .importlinter: what chalicelib may import, layer by layer and domain by domain."""
    linter = Path(sys.executable).with_name("lint-imports")
    checked = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_app_imports_nothing_that_is_not_deployed():
    offenders = []
    for name in _imports(ROOT / "app.py"):
        if name.split(".")[0] in ("local", "tests", "bench", "infra"):
            offenders.append(f"app.py imports {name}")
    assert offenders == []


def test_lazy_strings_in_app_name_real_modules():
    tree = ast.parse((ROOT / "app.py").read_text())
    lazy = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("LazyModule", "LazyNames")
    ]
    assert lazy, "app.py loads its domains lazily"
    for name in lazy:
        assert (ROOT / (name.replace(".", "/") + ".py")).exists(), name


def test_importing_the_app_loads_no_domain_aws_client_or_wechat():
    probe = (
        "import sys, app; heavy = [m for m in ('boto3', 'pynamodb', 'wechatpy', 'pydantic', "
        "'aws_lambda_powertools', 'chalicelib.members.service') if m in sys.modules]; print(','.join(heavy))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_logs_never_show_phones_openids_or_tokens():
    record = {
        "phone": "13912345678",
        "openid": "o-abc",
        "nested": {"session_key": "s3cret", "note": "call 13912345678 now"},
        "authorization": "Bearer xyz",
        "memberId": "m1",
    }
    masked = mask(record)
    assert masked["phone"] == masked["openid"] == masked["authorization"] == "***"
    assert masked["nested"]["session_key"] == "***"
    assert masked["nested"]["note"] == "call 139****5678 now"
    assert masked["memberId"] == "m1"


def test_tracing_off_offline_costs_no_xray_import():
    probe = (
        "import os, sys; os.environ['POWERTOOLS_TRACE_DISABLED'] = 'true'; "
        "from chalicelib.observability import traced\n"
        "with traced('login'): pass\n"
        "print('aws_xray_sdk' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"

