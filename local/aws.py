"""moto in this process: Step Functions (executing the real ASL), Lambda, IAM.

`LocalAws().start()` serves moto on a free loopback port; `deploy(app_module)`
creates a Lambda function for every `@app.lambda_function` of app.py, the
roles, and the state machines of `infra.template.MACHINES` (substituted by
`infra.asl.render`, as packaging does), then points the settings at them.

Lambda without Docker: moto runs a function by calling
`LambdaFunction._invoke_lambda`, which answers `(payload, errored, logs)`.
While a `LocalAws` runs, that method calls our Chalice handler of the same
name in this process, so `Invoke` and every Step Functions Lambda task run
app.py's code against DynamoDB Local. A raised exception becomes Lambda's
error payload (`errorType` is the exception's class name, `FunctionError` is
set), which is what Step Functions turns into the error its Retry and Catch
match. This routing lives here only; nothing deployed knows about it.

`failing_invocations` makes chosen invocations fail as Lambda can: refused by
the service, timed out after the work, or crashed. An execution that ends
other than succeeded is announced, as EventBridge's "Step Functions Execution
Status Change", to app.py's `@app.on_cw_event` handlers whose pattern names
Step Functions and that status (on a thread of its own, as EventBridge invokes
asynchronously).

Known moto behaviour to keep in mind: name every execution (an unnamed start
gets the name None); `SendTaskFailure` loses its cause; an error inside a
Parallel state surfaces as ValueError; a `Next` naming no state is accepted,
which is why `infra.asl.problems` checks the definition first.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from local.dynamodb_local import free_port

__all__ = ["LocalAws", "ACCOUNT_ID", "PARTITION", "failing_invocations", "LAMBDA_SERVICE_ERROR",
           "LAMBDA_THROTTLED", "FUNCTION_TIMEOUT", "FUNCTION_CRASH"]

ACCOUNT_ID = "123456789012"
PARTITION = "aws"
RUNTIME = "python3.11"
MEMORY_MB = 512
TIMEOUT_SECONDS = 30

_TRUST = {
    "lambda": "lambda.amazonaws.com",
    "states": "states.amazonaws.com",
}

Handler = Callable[[Any, Any], Any]

# Function name -> the Chalice handler that runs when moto invokes it.
_routes: dict[str, Handler] = {}
_routes_lock = threading.Lock()
_original_invoke: Any = None
_original_terminated: Any = None
# EventBridge handlers of Step Functions status changes: (statuses, handler).
_status_listeners: list[tuple[frozenset[str], Handler]] = []

# How an invocation can fail: Lambda's service refusing it (Step Functions reports `Lambda.<code>`), or
# the function itself timing out after its work (`Sandbox.Timedout`) or raising what no retry mends.
LAMBDA_SERVICE_ERROR = "ServiceException"
LAMBDA_THROTTLED = "TooManyRequestsException"
FUNCTION_TIMEOUT = "Sandbox.Timedout"
FUNCTION_CRASH = "RuntimeError"
_SERVICE_STATUS = {LAMBDA_SERVICE_ERROR: 500, LAMBDA_THROTTLED: 429}

# (function name, order id) -> the faults its next invocations meet, or one fault every invocation meets.
_faults: dict[tuple[str, str], list[str] | str] = {}
_faults_lock = threading.Lock()


@contextmanager
def failing_invocations(function_name: str, order_id: str, faults: Iterable[str] | str) -> Iterator[None]:
    """While open, `function_name`'s invocations for `order_id` fail: one by one as `faults` lists
    (then run normally), or all of them when `faults` is a single fault."""
    key = (function_name, order_id)
    with _faults_lock:
        _faults[key] = faults if isinstance(faults, str) else list(faults)
    try:
        yield
    finally:
        with _faults_lock:
            _faults.pop(key, None)


def _next_fault(function_name: str, event: Any) -> str | None:
    order_id = event.get("orderId") if isinstance(event, dict) else None
    with _faults_lock:
        planned = _faults.get((function_name, order_id or ""))
        if isinstance(planned, list):
            return planned.pop(0) if planned else None
        return planned


def _refused_by_lambda(fault: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    refusal = JsonRESTError(fault, f"injected {fault}")
    refusal.code = _SERVICE_STATUS[fault]
    return refusal


def _error_payload(exc: BaseException) -> dict[str, Any]:
    """What the Lambda Python runtime answers for an unhandled exception."""
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _invoke_in_process(function: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replaces moto's `LambdaFunction._invoke_lambda` (which would start a container)."""
    from chalice.local import LambdaContext

    with _routes_lock:
        handler = _routes.get(function.function_name)
    if handler is None:
        error = {"errorType": "HandlerNotFound", "errorMessage": f"no handler for {function.function_name}"}
        return json.dumps(error), True, ""
    if isinstance(event, (str, bytes)):
        event = json.loads(event or "{}")
    event = {} if event is None else event
    context = LambdaContext(
        function.function_name,
        memory_size=int(function.memory_size),
        max_runtime_ms=int(function.timeout) * 1000,
    )
    fault = _next_fault(function.function_name, event)
    if fault in _SERVICE_STATUS:
        raise _refused_by_lambda(fault)
    try:
        if fault == FUNCTION_CRASH:
            raise RuntimeError("injected crash")
        result = handler(event, context)
        if fault == FUNCTION_TIMEOUT:  # it did its work, and ran out of time before answering
            error = {"errorType": FUNCTION_TIMEOUT, "errorMessage": f"Task timed out after {function.timeout}.00 seconds"}
            return json.dumps(error), True, ""
        return json.dumps(result, ensure_ascii=False), False, ""
    except Exception as exc:  # Lambda reports any exception as a function error.
        return json.dumps(_error_payload(exc), ensure_ascii=False), True, "".join(traceback.format_exception(exc))


def _route_invocations() -> None:
    global _original_invoke
    from moto.awslambda.models import LambdaFunction

    if _original_invoke is None:
        _original_invoke = LambdaFunction._invoke_lambda
        LambdaFunction._invoke_lambda = _invoke_in_process  # type: ignore[method-assign]


def _announce_end(communication: Any) -> None:
    _original_terminated(communication)
    execution = communication.execution
    status = str(getattr(execution.exec_status, "value", execution.exec_status))
    event = {
        "version": "0",
        "id": f"status-change-{execution.name}-{status}",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": ACCOUNT_ID,
        "time": execution.stop_date.isoformat() if execution.stop_date else None,
        "region": execution.exec_arn.split(":")[3],
        "resources": [execution.exec_arn],
        "detail": {"executionArn": execution.exec_arn, "stateMachineArn": execution.state_machine_arn,
                   "name": execution.name, "status": status},
    }
    for statuses, handler in list(_status_listeners):
        if status in statuses:
            threading.Thread(target=_deliver, args=(handler, event), name=f"eventbridge-{execution.name}",
                             daemon=True).start()


def _deliver(handler: Handler, event: dict[str, Any]) -> None:
    try:
        handler(event, None)
    except Exception:  # Lambda logs it; on AWS the event is retried, then kept in the dead-letter queue
        logging.getLogger("local.aws").exception("the status-change handler failed")


def _route_status_changes(app_module: ModuleType) -> None:
    global _original_terminated
    from chalice.app import CloudWatchEventConfig
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    _status_listeners.clear()
    for source in app_module.app.event_sources:
        pattern = source.event_pattern if isinstance(source, CloudWatchEventConfig) else None
        if pattern and pattern.get("source") == ["aws.states"]:
            statuses = frozenset(pattern.get("detail", {}).get("status", []))
            _status_listeners.append((statuses, getattr(app_module, source.handler_string.rsplit(".", 1)[-1])))
    if _original_terminated is None:
        _original_terminated = BaseExecutionWorkerCommunication.terminated
        BaseExecutionWorkerCommunication.terminated = _announce_end  # type: ignore[method-assign]


def _restore_status_changes() -> None:
    global _original_terminated
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    _status_listeners.clear()
    if _original_terminated is not None:
        BaseExecutionWorkerCommunication.terminated = _original_terminated  # type: ignore[method-assign]
        _original_terminated = None


def _restore_invocations() -> None:
    global _original_invoke
    from moto.awslambda.models import LambdaFunction

    if _original_invoke is not None:
        LambdaFunction._invoke_lambda = _original_invoke  # type: ignore[method-assign]
        _original_invoke = None


def _dummy_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "# the code runs in the local stack's process\n")
    return buffer.getvalue()


class LocalAws:
    """moto's server on a loopback port, with ASL execution and in-process Lambda."""

    def __init__(self, port: int | None = None, region: str = "us-east-1") -> None:
        self.port = port or free_port()
        self.region = region
        self.state_machine_arn: str | None = None
        self.machine_arns: dict[str, str] = {}
        self.function_arns: dict[str, str] = {}
        self._server: Any = None
        self._function_names: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(service, region_name=self.region, endpoint_url=self.endpoint)

    def start(self) -> LocalAws:
        import requests
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from moto.server import ThreadedMotoServer

        # One access-log line per Lambda invocation and Step Functions call drowns the console.
        MotoRequestHandler.log_request = lambda *args, **kwargs: None  # type: ignore[method-assign]
        # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.port)
        _route_invocations()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        answer = requests.post(
            f"{self.endpoint}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}},
            timeout=10,
        )
        answer.raise_for_status()
        return self

    def deploy(self, app_module: ModuleType) -> None:
        """Functions, roles and the state machines, as infra/ deploys them on AWS."""
        from chalice.utils import to_cfn_resource_name

        from chalicelib.config import reset_settings, settings
        from infra import asl
        from infra.functions import LIMITS
        from infra.template import MACHINES, STATE_MACHINE_RESOURCE

        stage = settings().stage
        lambda_role = self._role(f"siyu-{stage}-lambda", "lambda")
        states_role = self._role(f"siyu-{stage}-state-machines", "states")
        functions = self.client("lambda")
        code = _dummy_zip()
        by_resource: dict[str, str] = {}
        for function in app_module.app.pure_lambda_functions:
            name = f"siyu-{stage}-{function.name}"
            handler = getattr(app_module, function.handler_string.rsplit(".", 1)[-1])
            with _routes_lock:
                _routes[name] = handler
            self._function_names.append(name)
            created = functions.create_function(
                FunctionName=name,
                Runtime=RUNTIME,
                Role=lambda_role,
                Handler=function.handler_string,
                Code={"ZipFile": code},
                MemorySize=LIMITS.get(function.name, (TIMEOUT_SECONDS, MEMORY_MB))[1],
                Timeout=LIMITS.get(function.name, (TIMEOUT_SECONDS, MEMORY_MB))[0],
            )
            self.function_arns[function.name] = created["FunctionArn"]
            by_resource[to_cfn_resource_name(function.name)] = created["FunctionArn"]

        pseudo = {"AWS::Partition": PARTITION, "AWS::Region": self.region, "AWS::AccountId": ACCOUNT_ID}

        def resolve(variable: str) -> str:
            if variable in pseudo:
                return pseudo[variable]
            resource, _, attribute = variable.partition(".")
            if attribute == "Arn" and resource in by_resource:
                return by_resource[resource]
            raise KeyError(f"a state machine names ${{{variable}}}, which app.py does not define")

        for machine in MACHINES:
            created_machine = self.client("stepfunctions").create_state_machine(
                name=machine.name(stage),
                definition=asl.render(resolve, machine.definition),
                roleArn=states_role,
            )
            self.machine_arns[machine.resource] = created_machine["stateMachineArn"]
            os.environ[machine.setting] = created_machine["stateMachineArn"]
        self.state_machine_arn = self.machine_arns[STATE_MACHINE_RESOURCE]
        _route_status_changes(app_module)
        os.environ["SIYU_AWS_ENDPOINT"] = self.endpoint
        reset_settings()

    def _role(self, name: str, service: str) -> str:
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": _TRUST[service]}, "Action": "sts:AssumeRole"}],
        }
        answer = self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        return answer["Role"]["Arn"]

    def stop(self) -> None:
        with _routes_lock:
            for name in self._function_names:
                _routes.pop(name, None)
            no_routes_left = not _routes
        if no_routes_left:
            _restore_invocations()
            _restore_status_changes()
        if self._server is not None:
            self._server.stop()
            self._server = None
