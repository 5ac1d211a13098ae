"""Schemathesis against the running stack's /openapi.json: no 5xx, no answer that breaks its own schema.

Every operation is fuzzed with the token of each role that may call it (a
member; staff and a guide of a store made for the run; an admin), public ones
also without a token. Path parameters, query parameters and body fields named
like an id draw half the time from ids that exist, so the fuzzer reaches past
"not found". `make test` runs a few examples per operation with a fixed seed;
`make fuzz` sets SIYU_FUZZ_EXAMPLES (and a random seed) for a longer run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import app
from chalicelib import clock
from chalicelib.auth import ADMIN, GUIDE, MEMBER, STAFF
from tests.appointment_helpers import at, future_day, make_store, staff_token
from tests.conftest import new_admin, unique
from tests.coupon_helpers import guide_token, new_campaign

EXAMPLES = int(os.environ.get("SIYU_FUZZ_EXAMPLES", "8"))
SEED = os.environ.get("SIYU_FUZZ_SEED", "20261202")
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
PUBLIC = "anyone"
CALLERS = (PUBLIC, MEMBER, STAFF, GUIDE, ADMIN)


@pytest.fixture(scope="module")
def world(api) -> dict[str, Any]:
    """Callers of every role and a few things that exist, for the fuzzer to find."""
    _, admin_token = new_admin(api)
    store = make_store()
    guide_id, guide = guide_token(api, store)
    member = api.login(unique("fuzz"))
    customer = api.post("/auth/login", json={"code": f"dev:{unique('customer')}", "scene": f"g={guide_id}"}).json()
    sku = unique("sku")
    api.put(f"/admin/skus/{sku}", admin_token, json={"title": "耳机", "price": 69900, "category": "audio"})
    campaigns = [new_campaign()["campaignId"], new_campaign(channel="guide")["campaignId"],
                 new_campaign(pointsPrice=10)["campaignId"]]
    coupon = api.post(f"/coupons/campaigns/{campaigns[0]}/claim", member).json()["couponId"]
    start = clock.iso(at(future_day(), "10:00"))
    booking = api.post("/appointments", member, json={"storeId": store, "serviceId": "film", "start": start}).json()
    return {
        "tokens": {MEMBER: member, STAFF: staff_token(api, store), GUIDE: guide, ADMIN: admin_token},
        "ids": {
            "storeId": [store, "warehouse"],
            "skuId": [sku],
            "campaignId": campaigns,
            "couponId": [coupon],
            "appointmentId": [booking["appointmentId"]],
            "memberId": [customer["member"]["memberId"]],
            "serviceId": ["film", "repair", "check"],
        },
    }


def operations_of(caller: str) -> list[str]:
    if caller == PUBLIC:
        return [route.name for route in app.api.routes if not route.roles]
    return [route.name for route in app.api.routes if caller in route.roles or (caller == MEMBER and not route.roles)]


def config(world: dict[str, Any], caller: str, base_url: str) -> str:
    """A schemathesis.toml for one caller's run."""
    lines = [
        f'base-url = "{base_url}"',
        # One worker: concurrent schema compilation trips CPython 3.11's ast module.
        "workers = 1",
        f"seed = {SEED}" if SEED else "",
        "[generation]",
        f"max-examples = {EXAMPLES}",
        'database = "none"',
        "[phases]",
        "examples.enabled = false",
        "stateful.enabled = false",
    ]
    if caller != PUBLIC:
        lines += ["[headers]", f'Authorization = "Bearer {world["tokens"][caller]}"']
    lines.append("[parameters]")
    lines += [
        f'"{where}.{name}" = {{ dictionary = "{name}", probability = 0.5 }}'
        for name in world["ids"]
        for where in ("path", "query", "body")
    ]
    for name, values in world["ids"].items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    return "\n".join(lines) + "\n"


@pytest.mark.after_the_others  # its admin learns openids from the staff list and may revoke any of them
@pytest.mark.parametrize("caller", CALLERS)
def test_no_operation_answers_a_5xx_or_breaks_its_own_schema(stack, world, tmp_path: Path, caller: str):
    names = operations_of(caller)
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config(world, caller, stack.api_url), encoding="utf-8")
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file),
        "run", f"{stack.api_url}/openapi.json", "--checks", CHECKS, "--phases", "coverage,fuzzing",
        *[argument for name in names for argument in ("--include-operation-id", name)],
    ]
    finished = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=1800, env={**os.environ, "NO_COLOR": "1"}
    )
    print(finished.stdout[-6000:])
    assert finished.returncode == 0, finished.stdout[-20000:] + finished.stderr[-4000:]
