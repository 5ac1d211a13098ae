"""`python -m local.stack` behaves like a service: it answers once seeded and leaves no DynamoDB Local behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.dynamodb_local import free_port
from local.seed import DEMO_STORES
from local.stack import READY

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")

ROOT = Path(__file__).resolve().parent.parent
START_UP_SECONDS = 120


class StackProcess:
    """One `python -m local.stack` on free ports, its output in a file."""

    def __init__(self, log: Path, api_port: int | None = None) -> None:
        self.log = log
        self.api_port = api_port or free_port()
        env = {**os.environ, "SIYU_API_PORT": str(self.api_port), "SIYU_SANDBOX_PORT": str(free_port())}
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-u", "-m", "local.stack"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def output(self) -> str:
        return self.log.read_text()

    def dynamodb_local_pid(self) -> int:
        return _wait_for(lambda: _java_child_of(self.process.pid), "DynamoDB Local to start")

    def wait_until_ready(self) -> None:
        _wait_for(lambda: READY in self.output, "the ready banner")

    def exit_code(self) -> int:
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., StackProcess]]:
    started: list[StackProcess] = []

    def start(api_port: int | None = None) -> StackProcess:
        started.append(StackProcess(tmp_path / f"stack-{len(started)}.log", api_port))
        return started[-1]

    yield start
    for running in started:
        running.kill()


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = START_UP_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"waited {timeout}s for {what}")


def _java_child_of(parent: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent_of(entry) == parent and b"DynamoDBLocal.jar" in _cmdline(entry):
            return int(entry.name)
    return None


def _parent_of(proc: Path) -> int | None:
    with contextlib.suppress(OSError):
        return int((proc / "stat").read_text().rpartition(")")[2].split()[1])
    return None


def _cmdline(proc: Path) -> bytes:
    with contextlib.suppress(OSError):
        return (proc / "cmdline").read_bytes()
    return b""


def _running(pid: int) -> bool:
    """A zombie no one reaps has stopped running: it holds no port and no memory."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    return False


def _assert_stops(pid: int) -> None:
    _wait_for(lambda: not _running(pid), f"DynamoDB Local (pid {pid}) to stop", timeout=20)


def _first_answer(port: int) -> requests.Response:
    def connects() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        return False

    _wait_for(connects, f"the API on port {port}")
    return requests.get(f"http://127.0.0.1:{port}/stores", params={"lat": 31.23, "lng": 121.47, "radiusKm": 50})


def test_the_api_answers_only_once_the_demo_brand_is_seeded_then_sigterm_stops_everything(launch):
    stack = launch()
    dynamodb_local = stack.dynamodb_local_pid()
    first = _first_answer(stack.api_port)
    assert first.status_code == 200
    assert {store["storeId"] for store in first.json()["items"]} >= set(DEMO_STORES)
    stack.wait_until_ready()
    stack.process.send_signal(signal.SIGTERM)
    assert stack.exit_code() == 0
    _assert_stops(dynamodb_local)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_start_up_stops_dynamodb_local(launch, signum):
    stack = launch()
    dynamodb_local = stack.dynamodb_local_pid()
    stack.process.send_signal(signum)
    stack.exit_code()
    _assert_stops(dynamodb_local)
    assert READY not in stack.output


def test_dynamodb_local_dies_with_a_killed_stack(launch):
    stack = launch()
    dynamodb_local = stack.dynamodb_local_pid()
    stack.process.kill()
    stack.process.wait()
    _assert_stops(dynamodb_local)


def test_a_port_in_use_is_named_with_the_variable_that_moves_it(launch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = launch(api_port=taken.getsockname()[1])
        assert stack.exit_code() != 0
    assert "SIYU_API_PORT" in stack.output
    assert "Traceback" not in stack.output
