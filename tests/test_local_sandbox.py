"""The sandbox's cron endpoint: a bad body is the caller's 400, never the sandbox's 500."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from chalice import Chalice, Rate

from local.sandbox import create_app


def _app_module() -> SimpleNamespace:
    app = Chalice("cron-probe")

    @app.schedule(Rate(1, unit=Rate.HOURS), name="tick")
    def tick(event):
        return {"ranAt": event.time}

    return SimpleNamespace(app=app, tick=tick)


@pytest.fixture
def sandbox():
    return create_app(_app_module()).test_client()


def test_a_job_runs_as_of_the_moment_given_with_an_offset(sandbox):
    answer = sandbox.post("/sandbox/cron/tick", json={"now": "2027-01-01T00:10:00+08:00"})
    assert answer.status_code == 200
    assert answer.get_json() == {
        "job": "tick", "now": "2027-01-01T00:10:00+08:00", "result": {"ranAt": "2027-01-01T00:10:00+08:00"},
    }


def test_the_body_is_read_as_json_whatever_its_content_type_as_curl_d_sends_it(sandbox):
    answer = sandbox.post("/sandbox/cron/tick", data='{"now": "2027-01-01T00:10:00+08:00"}',
                          content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert answer.get_json()["now"] == "2027-01-01T00:10:00+08:00"


def test_a_job_without_a_moment_runs_as_of_now(sandbox):
    for answer in (sandbox.post("/sandbox/cron/tick"), sandbox.post("/sandbox/cron/tick", json={})):
        assert answer.status_code == 200
        assert answer.get_json()["now"].endswith("Z")


@pytest.mark.parametrize("now", ["garbage", 123, "2027-01-01T00:10:00", "", ["2027-01-01T00:10:00Z"]])
def test_a_moment_that_is_not_iso_8601_with_an_offset_is_refused(sandbox, now):
    answer = sandbox.post("/sandbox/cron/tick", json={"now": now})
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["code"] == "INVALID_REQUEST"
    assert "now" in body["message"]


@pytest.mark.parametrize("data", ["[1]", "not json", "{", '"2027-01-01T00:10:00Z"'])
def test_a_body_that_is_not_a_json_object_is_refused(sandbox, data):
    answer = sandbox.post("/sandbox/cron/tick", data=data, content_type="application/json")
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["code"] == "INVALID_REQUEST"
    assert "body" in body["message"]


def test_an_unknown_job_is_not_found(sandbox):
    answer = sandbox.post("/sandbox/cron/no-such-job", json={"now": "2027-01-01T00:10:00+08:00"})
    assert answer.status_code == 404
    assert answer.get_json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("body", [
    {"service": "alipay", "kind": "unavailable"},
    {"service": "wxpay", "kind": "down"},
    {"service": "wxpay", "kind": "slow", "times": 0},
    {"service": "wxpay", "kind": "slow", "times": True},
    {"service": "dada", "kind": "slow", "path": 3},
    ["wxpay"],
])
def test_an_outage_the_sandbox_cannot_play_is_refused_and_none_begins(sandbox, body):
    answer = sandbox.post("/sandbox/outage", json=body)
    assert answer.status_code == 400 and answer.get_json()["code"] == "INVALID_REQUEST"
    assert sandbox.get("/sandbox/outage").get_json() == {"items": []}


def test_an_outage_meets_only_its_service_and_paths_as_many_times_as_asked(sandbox):
    assert sandbox.post("/sandbox/outage", json={"service": "wxpay", "kind": "unavailable", "times": 2,
                                                 "path": "/v3/refund/"}).status_code == 200
    assert sandbox.post("/v3/pay/transactions/jsapi", json={}).status_code != 500  # another path of the service
    assert sandbox.post("/api/order/addOrder", json={}).status_code == 200  # another service (Dada's own refusal)
    for _ in range(2):
        refused = sandbox.post("/v3/refund/domestic/refunds", json={})
        assert refused.status_code == 500 and refused.get_json()["code"] == "SYSTEM_ERROR"
    assert sandbox.post("/v3/refund/domestic/refunds", json={}).status_code != 500
    assert sandbox.get("/sandbox/outage").get_json()["items"][0]["met"] == 2
    assert sandbox.delete("/sandbox/outage").get_json() == {"ended": 1}
