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
