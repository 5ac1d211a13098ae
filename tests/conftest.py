"""The offline stack for the whole test session: DynamoDB Local, moto, sandbox, API.

Tests share one stack (starting DynamoDB Local takes seconds) and keep out of
each other's way by using fresh ids (`unique("alice")`), never by wiping tables.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local.dynamodb_local import free_port
from local.stack import Stack


def unique(prefix: str = "x") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """`check()`'s first truthy value, asked every 0.1 s; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class ApiClient:
    """Calls the API over HTTP as the mini-program does."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, token, **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, token, **kwargs)

    def put(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, token, **kwargs)

    def delete(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, token, **kwargs)

    def every_item(self, path: str, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list, page after page (each page answered 200)."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get(path, token, params={**params, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            found += page.json()["items"]
            cursor = page.json()["nextCursor"]
            if cursor is None:
                return found

    def login(self, openid: str, scene: str | None = None) -> str:
        body: dict[str, Any] = {"code": f"dev:{openid}"}
        if scene:
            body["scene"] = scene
        response = self.post("/auth/login", json=body)
        assert response.status_code == 200, response.text
        return response.json()["token"]


def live_member(prefix: str = "m") -> str:
    """The id of a new live member, written directly (for service tests that need no login)."""
    from chalicelib import clock
    from chalicelib.members.models import Member

    member_id = unique(prefix)
    Member(member_id, created_at=clock.now()).save()
    return member_id


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    running = Stack(
        api_port=free_port(),
        sandbox_port=free_port(),
        table_prefix=f"test{os.getpid()}-",
        seed=False,
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def api(stack: Stack) -> ApiClient:
    return ApiClient(stack.api_url)


def new_admin(api: ApiClient) -> tuple[str, str]:
    """A fresh HQ admin: (openid, token)."""
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid = unique("admin")
    members.grant_role(StaffGrant(openid=openid, role="admin", name="HQ"), granted_by="tests")
    return openid, api.login(openid)


@pytest.fixture(scope="session")
def admin_token(api: ApiClient, stack: Stack) -> str:
    return new_admin(api)[1]


@pytest.fixture
def member(api: ApiClient) -> tuple[str, str]:
    """A fresh member: (openid, token)."""
    openid = unique("member")
    return openid, api.login(openid)


@pytest.fixture
def log_stream() -> Iterator[Callable[[], str]]:
    """What the application's logger writes to its real handler's stream (every thread) while the test runs."""
    from chalicelib.observability import logger

    handler = logger().registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream.getvalue
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


class _Lines(logging.Handler):
    """Every line the application's logger writes, formatted as its real handler formats it."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._guard:
            self.lines.append(line)


@pytest.fixture(scope="session", autouse=True)
def suite_log_lines() -> Iterator[list[str]]:
    """What the application logged during the whole run, for the privacy audit that runs last."""
    from chalicelib.observability import logger

    log = logger()
    handler = _Lines(log.registered_handler.formatter)
    log.addHandler(handler)
    try:
        yield handler.lines
    finally:
        log.removeHandler(handler)


RUN_LATE = ("after_the_others", "after_everything")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_the_others` run after the ordinary ones, and those marked `after_everything` last."""

    def lateness(item: pytest.Item) -> int:
        return next((rank for rank, name in enumerate(RUN_LATE, 1) if item.get_closest_marker(name)), 0)

    items.sort(key=lateness)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "after_the_others: may disturb any other test (revoke anyone's role), so runs after them")
    config.addinivalue_line("markers", "after_everything: audits what the whole run left behind, so runs last")
