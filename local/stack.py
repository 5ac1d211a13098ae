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
import socket
import sys
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from local.dynamodb_local import DynamoDBLocal, environment_credentials, wait_for_port

__all__ = ["Stack", "main"]

READY = "siyu is ready"
API_PORT = "SIYU_API_PORT"
SANDBOX_PORT = "SIYU_SANDBOX_PORT"

LOCAL_SECRETS = {
    "SIYU_WECHAT_SECRET": "sandbox-app-secret",
    "SIYU_TOKEN_SIGNING_KEY": "local-token-signing-key-not-for-production",
    "SIYU_LOOKUP_HASH_KEY": "local-lookup-hash-key-not-for-production",
    "SIYU_COUPON_CODE_KEY": "local-coupon-code-key-not-for-production",
    "SIYU_WECHAT_PUSH_TOKEN": "sandbox-push-token",
    "SIYU_WECHAT_PUSH_AES_KEY": "c2FuZGJveC1wdXNoLWFlcy1rZXktMzItYnl0ZXMhISE",
    "SIYU_DADA_APP_SECRET": "sandbox-dada-app-secret",
    "SIYU_WECHAT_DELIVERY_APP_SECRET": "sandbox-delivery-app-secret",
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

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def start(self) -> Stack:
        """Everything up and the demo brand seeded before the API takes its first request."""
        os.environ.update(environment_credentials())
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "siyu")
        self.dynamodb = DynamoDBLocal()
        self.dynamodb.start()
        self.aws = _start_aws()
        from local.wxpay_sandbox import WxPayKeys

        # Made before the settings are read: the API signs and verifies with them.
        wxpay_keys = WxPayKeys.generate()
        os.environ.update(LOCAL_SECRETS)
        os.environ.update({
            "SIYU_STAGE": "local",
            "SIYU_REGION": "us-east-1",
            "SIYU_TABLE_PREFIX": self.table_prefix,
            "SIYU_DYNAMODB_ENDPOINT": self.dynamodb.endpoint,
            "SIYU_AWS_ENDPOINT": self.aws.endpoint if self.aws else "",
            "SIYU_WECHAT_API_BASE": self.sandbox_url,
            "SIYU_DADA_API_BASE": self.sandbox_url,
            "SIYU_DADA_CALLBACK_URL": f"{self.api_url}/webhooks/courier/dada",
        })
        os.environ.update(wxpay_keys.environment(f"{self.api_url}/webhooks/wechatpay", api_base=self.sandbox_url))
        from chalicelib.config import reset_settings

        reset_settings()
        create_tables()
        self.app_module = importlib.import_module("app")
        if self.aws:
            self.aws.deploy(self.app_module)
        from local.sandbox import Sandbox

        self.sandbox = Sandbox(self.app_module, self.sandbox_port, lambda_context=_lambda_context,
                               wxpay_keys=wxpay_keys, couriers=self._couriers()).start()
        if self.seed:
            from local import seed

            seed.seed_demo_brand()
        self._start_api()
        return self

    def _couriers(self) -> Any:
        """The sandbox's couriers, sharing the API's local secrets and pushing to its /webhooks/wechat."""
        from chalicelib.config import settings
        from local.courier_sandbox import CourierState

        return CourierState(
            dada_app_secret=LOCAL_SECRETS["SIYU_DADA_APP_SECRET"],
            delivery_app_secret=LOCAL_SECRETS["SIYU_WECHAT_DELIVERY_APP_SECRET"],
            push_url=f"{self.api_url}/webhooks/wechat",
            push_token=LOCAL_SECRETS["SIYU_WECHAT_PUSH_TOKEN"],
            push_aes_key=LOCAL_SECRETS["SIYU_WECHAT_PUSH_AES_KEY"],
            appid=settings().wechat_appid,
        )

    def _start_api(self) -> None:
        from chalice.config import Config

        from local.api_server import create_server

        config = Config.create(chalice_stage="local", app_name="siyu", lambda_timeout=30)
        server = create_server(self.app_module.app, config, "127.0.0.1", self.api_port)
        # The HTTP server itself, not chalice's wrapper, which would print after the ready banner.
        threading.Thread(target=server.server.serve_forever, name="api", daemon=True).start()
        self._api_server = server
        wait_for_port(self.api_port)

    def stop(self) -> None:
        """Stop what started; DynamoDB Local, a process of its own, even when stopping the rest fails."""
        try:
            self._stop_servers()
        finally:
            if self.dynamodb is not None:
                self.dynamodb.stop()

    def _stop_servers(self) -> None:
        if self._api_server is not None:
            self._api_server.shutdown()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.aws is not None:
            self.aws.stop()


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
    """Serve until Ctrl-C or SIGTERM, which stop everything at any moment, start-up included."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = Stack(api_port=_port(API_PORT, 8000), sandbox_port=_port(SANDBOX_PORT, 8100))
    print("starting siyu's local stack ...", flush=True)
    try:
        stack.start()
        print(_banner(stack), flush=True)
        _serve_until_interrupted()
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        stack.stop()


def _serve_until_interrupted() -> None:
    # A signal that lands just before a wait without a timeout is handled only once the wait ends.
    while True:
        time.sleep(0.5)


def _port(variable: str, default: int) -> int:
    """The port `variable` names, refused before anything starts when it is not one or is taken."""
    text = os.environ.get(variable, str(default))
    if not text.isdigit() or not 0 < int(text) < 65536:
        sys.exit(f"{variable}={text} is not a port number")
    if not _is_free(int(text)):
        sys.exit(f"port {text} is in use: stop what holds it, or choose another with {variable}=<port> make run")
    return int(text)


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _banner(stack: Stack) -> str:
    assert stack.dynamodb is not None
    return "\n".join([
        "",
        f"{READY} (demo brand seeded):",
        f"  API             {stack.api_url}",
        f"  sandbox         {stack.sandbox_url}   (WeChat, WeChat Pay, couriers, cron)",
        f"  DynamoDB Local  {stack.dynamodb.endpoint}   (tables prefixed {stack.table_prefix})",
        f"  moto            {stack.aws.endpoint if stack.aws else '-'}   (Step Functions, Lambda, EventBridge, SSM)",
        "",
        "Try:",
        f"  curl -s -X POST {stack.api_url}/auth/login -d '{{\"code\": \"dev:alice\"}}'",
        "",
        "Ctrl-C stops everything.",
    ])


if __name__ == "__main__":
    main()
