"""The Lambda functions Chalice generates, completed: a name, a log group, a role of their own.

Chalice generates a function and a role per entry point of app.py; the merge
template gives each function

- a fixed name, `siyu-<stage>-<chalice name>`, so its log group can exist
  before it does, with the stage's retention, and its role can name it;
- a role whose only policy is built from its declaration in infra/access.py
  (replacing the one Chalice copies from .chalice/policy-lambda.json);
- for a function EventBridge invokes (a scheduled job, the end of an order's
  execution): a dead-letter queue for the events it failed on, and reserved
  concurrency;
- for a job or a whole-table task, its own timeout and memory (`LIMITS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalice.app import CloudWatchEventConfig, ScheduledEventConfig
from chalice.utils import to_cfn_resource_name

from infra import access as declared
from infra.cfn import arn, get_att, log_group, policy_document, statement
from infra.stage import Stage

__all__ = [
    "DEAD_LETTER_QUEUE_RESOURCE",
    "POLICY_NAME",
    "LIMITS",
    "Function",
    "functions",
    "function_resources",
]

DEAD_LETTER_QUEUE_RESOURCE = "JobsDeadLetterQueue"
POLICY_NAME = "FunctionAccess"
# Each job runs one event at a time: a slow or retried run then takes at most
# this much of the account's concurrency, which the API and the order tasks share.
JOB_CONCURRENCY = 1

# A whole-table job's segments run side by side up to the Map state's MaxConcurrency (infra/segmented.asl.json);
# two jobs at once share this.
WHOLE_TABLE_CONCURRENCY = {"segment_scan": 16, "segment_finish": 2}

# (timeout seconds, memory MB) of each job and whole-table task; the others keep .chalice/config.json's
# (30 s, 512 MB). A job's timeout is what its work takes at ten million members with room to spare
# (bench/REPORT.md); a whole-table task stops for the machine to call it again with 10 s left.
LIMITS: dict[str, tuple[int, int]] = {
    "appointment-reminders": (120, 512),
    "appointment-no-shows": (120, 512),
    "coupon-expiry": (900, 1024),
    "points-expiry": (900, 1024),
    "tier-review": (900, 1024),
    "customer-segments": (900, 1024),
    "order-sweeper": (240, 512),
    "ledger-audit": (900, 1024),
    "pay-reconciliation": (300, 1024),
    "daily-report": (300, 512),
    "ledger-proof": (30, 256),
    "stock-audit": (30, 256),
    "order_execution_ended": (60, 512),
    "segment_scan": (300, 1024),
    "segment_finish": (120, 512),
}

_DYNAMODB_ACTIONS = {
    declared.READ: ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:Query"],
    declared.SCAN: ["dynamodb:Scan"],
    declared.WRITE: ["dynamodb:PutItem", "dynamodb:UpdateItem"],
    declared.DELETE: ["dynamodb:DeleteItem"],
}


@dataclass(frozen=True)
class Function:
    name: str  # Chalice's: api_handler, appointment-reminders, order_reserve
    resource: str
    role: str
    invoked_by_eventbridge: bool  # a schedule or an event rule: one at a time, failed events kept in the queue

    @property
    def log_group(self) -> str:
        return self.resource + "LogGroup"

    def function_name(self, stage: Stage) -> str:
        return stage.resource_name(self.name)


_EVENTBRIDGE_SOURCES = (ScheduledEventConfig, CloudWatchEventConfig)


def _function(name: str, invoked_by_eventbridge: bool = False, resource: str | None = None) -> Function:
    return Function(name, resource or to_cfn_resource_name(name), to_cfn_resource_name(f"{name}_role"),
                    invoked_by_eventbridge)


def functions(app: Any) -> list[Function]:
    """Every Lambda function Chalice makes of `app`, by the names Chalice gives them."""
    found = [_function(declared.API_HANDLER, resource="APIHandler")] if app.routes else []
    found += [_function(function.name) for function in app.pure_lambda_functions]
    found += [
        _function(source.name, invoked_by_eventbridge=isinstance(source, _EVENTBRIDGE_SOURCES))
        for source in app.event_sources
    ]
    found += [_function(authorizer.name) for authorizer in app.builtin_auth_handlers]
    return found


# --- The role ----------------------------------------------------------------------

def _table_statements(grants: list[declared.TableGrant], stage: Stage) -> list[dict[str, Any]]:
    statements = []
    for verb, actions in _DYNAMODB_ACTIONS.items():
        resources = []
        for grant in grants:
            if verb not in grant.verbs:
                continue
            table = f"table/{stage.table_prefix}{grant.table}"
            resources.append(arn("dynamodb", table))
            if verb == declared.READ:
                resources += [arn("dynamodb", f"{table}/index/{index}") for index in grant.indexes]
        if resources:
            statements.append(statement(f"Tables{verb.name.title()}", actions, resources))
    return statements


def _service_statements(
    services: frozenset[declared.Service], machine_arns: dict[str, Any], stage: Stage
) -> list[dict[str, Any]]:
    statements = []
    if declared.Service.START_ORDERS in services:
        statements.append(statement("StartOrders", ["states:StartExecution"], [machine_arns["OrderStateMachine"]]))
    if declared.Service.START_WHOLE_TABLE_JOBS in services:
        statements.append(statement("StartWholeTableJobs", ["states:StartExecution"],
                                    [machine_arns["SegmentedStateMachine"]]))
        executions = arn("states", f"execution:{stage.resource_name('segmented')}:*")
        statements.append(statement("ReadWholeTableJobs", ["states:DescribeExecution"], [executions]))
    if declared.Service.READ_ORDER_EXECUTIONS in services:
        executions = arn("states", f"execution:{stage.resource_name('order')}:*")
        statements.append(statement("ReadOrderExecutions", ["states:DescribeExecution"], [executions]))
    if declared.Service.ANSWER_ORDER_WAITS in services:
        # The task-token calls name no resource; IAM only accepts "*" for them.
        statements.append(statement(
            "AnswerOrderWaits", ["states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"], "*",
        ))
    return statements


def _policy(function: Function, access: declared.Access, models: list[Any], stage: Stage,
            machine_arns: dict[str, Any]) -> dict[str, Any]:
    # The role names its log group, so the group exists before the function: creating one is not granted.
    own_log_group = [get_att(function.log_group, "Arn")]
    statements = [statement("Logs", ["logs:CreateLogStream", "logs:PutLogEvents"], own_log_group)]
    if stage.traced:
        statements.append(statement("Tracing", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "*"))
    statements += _table_statements(declared.table_grants(access, models), stage)
    if access.parameters:
        parameters = [arn("ssm", f"parameter{stage.parameter(setting)}") for setting in sorted(access.parameters)]
        statements.append(statement("Parameters", ["ssm:GetParameter"], parameters))
    statements += _service_statements(access.services, machine_arns, stage)
    if function.invoked_by_eventbridge:
        statements.append(statement("DeadLetters", ["sqs:SendMessage"], [get_att(DEAD_LETTER_QUEUE_RESOURCE, "Arn")]))
    return {"PolicyName": POLICY_NAME, "PolicyDocument": policy_document(statements)}


# --- The resources ----------------------------------------------------------------------

def _function_properties(function: Function, stage: Stage) -> dict[str, Any]:
    properties: dict[str, Any] = {"FunctionName": function.function_name(stage)}
    if function.name in LIMITS:
        properties["Timeout"], properties["MemorySize"] = LIMITS[function.name]
    if function.name in WHOLE_TABLE_CONCURRENCY:
        properties["ReservedConcurrentExecutions"] = WHOLE_TABLE_CONCURRENCY[function.name]
    if function.invoked_by_eventbridge:
        properties["ReservedConcurrentExecutions"] = JOB_CONCURRENCY
        properties["DeadLetterQueue"] = {"Type": "SQS", "TargetArn": get_att(DEAD_LETTER_QUEUE_RESOURCE, "Arn")}
    return properties


def _dead_letter_queue(stage: Stage) -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": stage.resource_name("jobs-dead-letters"),
            "MessageRetentionPeriod": 14 * 24 * 3600,  # SQS's longest: a failed night's event can still be replayed
            # The AWS managed key: its key policy lets Lambda put messages for any role of the account.
            "KmsMasterKeyId": "alias/aws/sqs",
        },
    }


def function_resources(app: Any, models: Iterable[Any], stage: Stage, machine_arns: dict[str, Any]) -> dict[str, Any]:
    """The merge template's part for the functions: what it adds to Chalice's, and their log groups and queue."""
    models = list(models)
    resources: dict[str, Any] = {}
    app_functions = functions(app)
    for function in app_functions:
        access = declared.ACCESS[function.name]
        resources[function.resource] = {"Properties": _function_properties(function, stage)}
        resources[function.role] = {
            "Properties": {"Policies": [_policy(function, access, models, stage, machine_arns)]},
        }
        resources[function.log_group] = log_group(f"/aws/lambda/{function.function_name(stage)}",
                                                  stage.limits.log_retention_days)
    if any(function.invoked_by_eventbridge for function in app_functions):
        resources[DEAD_LETTER_QUEUE_RESOURCE] = _dead_letter_queue(stage)
    return resources
