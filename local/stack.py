"""The whole offline stack in one process: `python -m local.stack` (what `make run` runs).

DynamoDB Local (AWS's engine, a Java child process), moto for Step Functions,
Lambda, EventBridge and SSM (in this process, so the state machine's Lambda
tasks call our handlers), every table created from the models, the state
machine from infra/, the demo brand seeded, the sandbox and the API.
Tests start the same `Stack` with free ports and a table prefix of their own.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from local.dynamodb_local import DynamoDBLocal, environment_credentials, wait_for_port

__all__ = ["Stack", "main"]

LOCAL_SECRETS = {
    "SIYU_WECHAT_SECRET": "sandbox-app-secret",
    "SIYU_TOKEN_SIGNING_KEY": "local-token-signing-key-not-for-production",
    "SIYU_LOOKUP_HASH_KEY": "local-lookup-hash-key-not-for-production",
    "SIYU_COUPON_CODE_KEY": "local-coupon-code-key-not-for-production",
}


@dataclass
class Stack:
    api_port: int = 8000
    sandbox_port: int = 8100
    table_prefix: str = "siyu-local-"
    seed: bool = True
    dynamodb: DynamoDBLocal | None = None
    aws: Any = None
    app_module: ModuleType | None = None
    sandbox: Any = None
    _api_server: Any = None
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def start(self) -> Stack:
        os.environ.update(environment_credentials())
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "siyu")
        self.dynamodb = DynamoDBLocal().start()
        self.aws = _start_aws()
        os.environ.update(LOCAL_SECRETS)
        os.environ.update({
            "SIYU_STAGE": "local",
            "SIYU_REGION": "us-east-1",
            "SIYU_TABLE_PREFIX": self.table_prefix,
            "SIYU_DYNAMODB_ENDPOINT": self.dynamodb.endpoint,
            "SIYU_AWS_ENDPOINT": self.aws.endpoint if self.aws else "",
            "SIYU_WECHAT_API_BASE": self.sandbox_url,
        })
        from chalicelib.config import reset_settings

        reset_settings()
        create_tables()
        self.app_module = importlib.import_module("app")
        if self.aws:
            self.aws.deploy(self.app_module)
        from local.sandbox import Sandbox

        self.sandbox = Sandbox(self.app_module, self.sandbox_port, lambda_context=_lambda_context).start()
        self._start_api()
        if self.seed:
            from local import seed

            seed.seed_demo_brand()
        return self

    def _start_api(self) -> None:
        from chalice.config import Config

        from local.api_server import create_server

        config = Config.create(chalice_stage="local", app_name="siyu", lambda_timeout=30)
        self._api_server = create_server(self.app_module.app, config, "127.0.0.1", self.api_port)
        thread = threading.Thread(target=self._api_server.serve_forever, name="api", daemon=True)
        thread.start()
        self._threads.append(thread)
        wait_for_port(self.api_port)

    def stop(self) -> None:
        if self._api_server is not None:
            self._api_server.shutdown()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.aws is not None:
            self.aws.stop()
        if self.dynamodb is not None:
            self.dynamodb.stop()


def _lambda_context(function_name: str) -> Any:
    from chalice.local import LambdaContext

    return LambdaContext(function_name, memory_size=512, max_runtime_ms=30000)


def _start_aws() -> Any:
    """moto in this process (see local/aws.py); None where it is not installed yet."""
    try:
        aws = importlib.import_module("local.aws")
    except ModuleNotFoundError:
        return None
    return aws.LocalAws().start()


def create_tables() -> list[str]:
    """Create every table the models describe (on DynamoDB Local)."""
    from chalicelib.db import all_models

    created = []
    for model in all_models():
        model._get_connection()
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        created.append(model.Meta.table_name)
    return created


def main() -> None:
    api_port = int(os.environ.get("SIYU_API_PORT", "8000"))
    sandbox_port = int(os.environ.get("SIYU_SANDBOX_PORT", "8100"))
    stack = Stack(api_port=api_port, sandbox_port=sandbox_port)
    print("starting siyu's local stack ...", flush=True)
    stack.start()
    assert stack.dynamodb is not None
    print(
        "\n".join([
            "",
            "siyu is running:",
            f"  API             {stack.api_url}",
            f"  sandbox         {stack.sandbox_url}   (WeChat, WeChat Pay, couriers, cron)",
            f"  DynamoDB Local  {stack.dynamodb.endpoint}   (tables prefixed {stack.table_prefix})",
            f"  moto            {stack.aws.endpoint if stack.aws else '-'}   (Step Functions, Lambda, EventBridge, SSM)",
            "",
            "Try:",
            f"  curl -s -X POST {stack.api_url}/auth/login -d '{{\"code\": \"dev:alice\"}}'",
            "",
            "Ctrl-C stops everything.",
        ]),
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    print("\nstopping ...", flush=True)
    stack.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
