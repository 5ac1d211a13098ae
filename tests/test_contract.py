"""The contract: docs/api.md, the routes of app.py and the /openapi.json they generate agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import app

CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "api.md"
METHOD = "GET|POST|PUT|PATCH|DELETE"
# `POST /orders`, and `GET`/`POST /webhooks/wechat` for two methods on one path.
ENDPOINT = re.compile(rf"((?:`(?:{METHOD})`/)*)`({METHOD}) (/[^`?\s]*)")

# The contract's endpoints that no route serves yet. Take a line out when its route lands.
STILL_TO_BUILD: set[tuple[str, str]] = set()


def documented() -> set[tuple[str, str]]:
    """Every endpoint docs/api.md names, less the sandbox's (which is not the API)."""
    found = set()
    for more, method, path in ENDPOINT.findall(CONTRACT.read_text(encoding="utf-8")):
        if not path.startswith("/sandbox/"):
            found |= {(each, path) for each in [*re.findall(METHOD, more), method]}
    return found


def routes() -> set[tuple[str, str]]:
    return {(route.method, route.path) for route in app.api.routes}


def served_endpoints() -> set[tuple[str, str]]:
    """The routes and the webhooks (which speak their senders' formats, outside /openapi.json)."""
    return routes() | {(hook.method, hook.path) for hook in app.api.webhooks}


@pytest.fixture(scope="module")
def served(api) -> dict[str, Any]:
    answer = api.get("/openapi.json")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    return answer.json()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_the_contract_is_read_from_the_repository():
    assert len(documented()) > 40, "docs/api.md lost its tables?"


def test_every_endpoint_of_the_contract_is_a_route_or_still_to_build():
    missing = documented() - served_endpoints() - STILL_TO_BUILD
    assert missing == set(), f"in docs/api.md, served by no route: {sorted(missing)}"


def test_what_is_still_to_build_is_in_the_contract_and_not_built_yet():
    assert STILL_TO_BUILD - documented() == set(), "not in docs/api.md"
    assert STILL_TO_BUILD & served_endpoints() == set(), "built: take it off STILL_TO_BUILD"


def test_every_route_is_in_openapi_json_and_nothing_else(served):
    assert set(operations(served)) == routes()


def test_the_document_is_valid_openapi_3_1(served):
    from openapi_spec_validator import validate

    assert served["openapi"].startswith("3.1")
    validate(served)


def test_each_operation_says_who_may_call_it_and_what_it_answers(served):
    components = served["components"]
    assert components["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "from POST /auth/login",
    }
    error = components["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message"}
    for route in app.api.routes:
        operation = operations(served)[(route.method, route.path)]
        assert operation["operationId"] == route.name
        assert operation["security"] == ([{"bearer": []}] if route.roles else []), route.path
        success = operation["responses"][str(route.status)]
        if route.status != 204:
            assert success["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
        refusals = {status for status in operation["responses"] if status.startswith("4")}
        expected = {"400", "401", "404", "409"} | ({"403"} if route.roles else set()) | (
            {"422"} if route.idempotent else set()
        )
        assert refusals == expected, route.path
        for status in refusals:
            name = operation["responses"][status]["$ref"].rsplit("/", 1)[1]
            schema = components["responses"][name]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}


def test_lists_page_and_value_moving_posts_take_an_idempotency_key(served):
    for route in app.api.routes:
        parameters = {(p["in"], p["name"]): p for p in operations(served)[(route.method, route.path)].get("parameters", [])}
        for name in route.path_params:
            assert parameters[("path", name)]["required"] is True
        if route.paged:
            assert parameters[("query", "limit")]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
            assert parameters[("query", "cursor")]["schema"] == {"type": "string"}
        else:
            assert ("query", "limit") not in parameters, route.path
        assert (("header", "Idempotency-Key") in parameters) == route.idempotent, route.path


def test_the_lists_of_the_contract_are_pages():
    lists = {
        "/skus", "/stores", "/points/entries", "/coupons/campaigns", "/members/me/coupons",
        "/members/me/appointments", "/store/appointments", "/admin/campaigns", "/members/me/orders",
        "/store/orders", "/guide/customers", "/admin/staff", "/admin/config/{section}/changes",
    }
    assert {route.path for route in app.api.routes if route.paged} == lists


def test_every_route_but_a_204_names_the_model_of_its_answer():
    with pytest.raises(ValueError, match="response="):
        app.api.route("/nowhere", "GET")
