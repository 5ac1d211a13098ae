"""The CloudFormation Chalice does not generate, merged into its template.

Chalice generates the functions, their roles, the API and the schedules. This
module adds, derived rather than copied:

- a DynamoDB table per pynamodb model (`chalicelib.db.all_models()`): keys,
  attribute types, indexes and TTL from the model, named with the stage's
  `SIYU_TABLE_PREFIX` from .chalice/config.json, on-demand, with
  point-in-time recovery and deletion protection, kept when the stack goes;
- per function (infra/functions.py): its name, its log group, its own role
  built from its declaration in infra/access.py, and for the scheduled jobs
  a dead-letter queue and reserved concurrency;
- the state machines (`MACHINES`): the order's from infra/order.asl.json and
  the whole-table jobs' from infra/segmented.asl.json (`infra.asl.render`),
  each with its role, its log group and tracing, and its ARN in every
  function's environment;
- the API stage's throttling, tracing and name, and API Gateway's own
  refusals (what never reaches the function: an unknown method, a body too
  large, throttling) in the API's `{code, message}` shape, never repeating a
  request header;
- the alarms and their topic (infra/alarms.py).

Every ARN is built with `${AWS::Partition}`: a brand's stack runs in aws-cn too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice.utils import to_cfn_resource_name

from chalicelib.config import Settings
from infra import access, asl
from infra.alarms import ALARM_TOPIC_RESOURCE, alarm_resources
from infra.cfn import arn, get_att, log_group, policy_document, statement, sub
from infra.functions import DEAD_LETTER_QUEUE_RESOURCE, function_resources, functions
from infra.stage import CHALICE_CONFIG, PROJECT, Stage, load_stage

__all__ = [
    "PROJECT",
    "REST_API_RESOURCE",
    "gateway_responses",
    "STATE_MACHINE_RESOURCE",
    "SEGMENTED_MACHINE_RESOURCE",
    "MACHINES",
    "STATE_MACHINE_LOG_GROUP_RESOURCE",
    "api_name",
    "state_machine_name",
    "table_resource_name",
    "table_resource",
    "merge_template",
]

REST_API_RESOURCE = "RestAPI"
STATE_MACHINE_RESOURCE = "OrderStateMachine"
SEGMENTED_MACHINE_RESOURCE = "SegmentedStateMachine"
STATE_MACHINE_LOG_GROUP_RESOURCE = "OrderStateMachineLogGroup"


@dataclass(frozen=True)
class Machine:
    """A state machine of the stack: its resource, its name's suffix, its definition, its ARN's setting."""

    resource: str
    suffix: str
    definition: Path
    setting: str  # the environment variable every function reads its ARN from

    def name(self, stage: str) -> str:
        return f"siyu-{stage}-{self.suffix}"

    def arn(self, stage: str) -> dict[str, str]:
        # Built from the name, not `Ref`: the functions the machine invokes read it, and
        # a Ref would make the machine and its functions depend on each other.
        return arn("states", f"stateMachine:{self.name(stage)}")


MACHINES = [
    Machine(STATE_MACHINE_RESOURCE, "order", asl.ORDER_DEFINITION, "SIYU_STATE_MACHINE_ARN"),
    Machine(SEGMENTED_MACHINE_RESOURCE, "segmented", asl.SEGMENTED_DEFINITION, "SIYU_SEGMENTED_MACHINE_ARN"),
]

# Step Functions delivers its logs through CloudWatch Logs' log delivery API, which
# names no resource; these are the actions AWS documents for it, on "*".
_LOG_DELIVERY_ACTIONS = [
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
]
_TRACING_ACTIONS = [
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
]


def state_machine_name(stage: str) -> str:
    return MACHINES[0].name(stage)


# --- Tables ------------------------------------------------------------------------

def table_resource_name(model: Any) -> str:
    return to_cfn_resource_name(model.Meta.table) + "Table"


def _key_schema(keys: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    # DynamoDB wants the HASH key first; pynamodb lists them in attribute order.
    return [
        {"AttributeName": key["AttributeName"], "KeyType": key["KeyType"]}
        for key in sorted(keys, key=lambda key: key["KeyType"] != "HASH")
    ]


def _index(index: dict[str, Any]) -> dict[str, Any]:
    projection = {"ProjectionType": index["projection"]["ProjectionType"]}
    if index["projection"].get("NonKeyAttributes"):
        projection["NonKeyAttributes"] = list(index["projection"]["NonKeyAttributes"])
    return {
        "IndexName": index["index_name"],
        "KeySchema": _key_schema(index["key_schema"]),
        "Projection": projection,
    }


def table_resource(model: Any, prefix: str) -> dict[str, Any]:
    """The AWS::DynamoDB::Table a model describes."""
    schema = model._get_schema()
    properties: dict[str, Any] = {
        "TableName": prefix + model.Meta.table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": sorted(
            ({"AttributeName": a["AttributeName"], "AttributeType": a["AttributeType"]}
             for a in schema["attribute_definitions"]),
            key=lambda attribute: attribute["AttributeName"],
        ),
        "KeySchema": _key_schema(schema["key_schema"]),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "DeletionProtectionEnabled": True,
    }
    if schema["global_secondary_indexes"]:
        properties["GlobalSecondaryIndexes"] = [_index(index) for index in schema["global_secondary_indexes"]]
    if schema["local_secondary_indexes"]:
        properties["LocalSecondaryIndexes"] = [_index(index) for index in schema["local_secondary_indexes"]]
    ttl = model.ttl_attribute_name()
    if ttl:
        properties["TimeToLiveSpecification"] = {"AttributeName": ttl, "Enabled": True}
    return {
        "Type": "AWS::DynamoDB::Table",
        # Data outlives a deleted or replaced stack; removing a table is a decision, not a side effect.
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    }


# --- The state machine ------------------------------------------------------------

def _keep_placeholder(variable: str) -> str:
    return "${" + variable + "}"


def _state_machine_role(machine: Machine, invoked: list[str], traced: bool) -> dict[str, Any]:
    statements = [
        statement("InvokeTasks", ["lambda:InvokeFunction"], [
            function_arn
            for resource in invoked
            for function_arn in (get_att(resource, "Arn"), sub(f"${{{resource}.Arn}}:*"))
        ]),
        statement("DeliverLogs", _LOG_DELIVERY_ACTIONS, "*"),
    ]
    if traced:
        statements.append(statement("Tracing", _TRACING_ACTIONS, "*"))
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": policy_document([{
                "Effect": "Allow",
                "Principal": {"Service": "states.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }]),
            "Policies": [{"PolicyName": machine.resource, "PolicyDocument": policy_document(statements)}],
        },
    }


def _state_machine(app: Any, stage: Stage, machine: Machine) -> dict[str, Any]:
    definition = asl.render(_keep_placeholder, machine.definition)
    invoked = sorted(asl.function_resources(definition))
    unknown = set(invoked) - {function.resource for function in functions(app)}
    if unknown:
        raise ValueError(f"infra/{machine.definition.name} invokes {sorted(unknown)}, which app.py does not define")
    role, log_group_resource = f"{machine.resource}Role", f"{machine.resource}LogGroup"
    properties = {
        "StateMachineName": machine.name(stage.name),
        "StateMachineType": "STANDARD",
        "RoleArn": get_att(role, "Arn"),
        "DefinitionString": sub(definition),
        # Every step, without its input and output: those carry the order's address and phone.
        "LoggingConfiguration": {
            "Level": "ALL",
            "IncludeExecutionData": False,
            "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": get_att(log_group_resource, "Arn")}}],
        },
        "TracingConfiguration": {"Enabled": stage.traced},
    }
    return {
        role: _state_machine_role(machine, invoked, stage.traced),
        # The vendedlogs prefix keeps CloudWatch Logs' resource policy for log delivery short.
        log_group_resource: log_group(
            f"/aws/vendedlogs/states/{machine.name(stage.name)}", stage.limits.log_retention_days,
        ),
        machine.resource: {"Type": "AWS::StepFunctions::StateMachine", "Properties": properties},
    }


# --- The API -----------------------------------------------------------------------------

def api_name(stage: Stage) -> str:
    return stage.resource_name("api")


# --- API Gateway's own answers ------------------------------------------------------------

# Response type: (status, code, message); no status keeps API Gateway's, and
# `$context.error.responseType` (an UPPER_SNAKE name) stands in for the code.
# `$context.error.message` is never used: for a path without a route it quotes the Authorization header.
_GATEWAY_REFUSALS: dict[str, tuple[int | None, str, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (404, "NOT_FOUND", "no such path"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "UNSUPPORTED_MEDIA_TYPE", "the body must be JSON (Content-Type: application/json)"),
    "REQUEST_TOO_LARGE": (413, "PAYLOAD_TOO_LARGE", "the request is too large"),
    "BAD_REQUEST_BODY": (400, "INVALID_REQUEST", "body: is not valid"),
    "BAD_REQUEST_PARAMETERS": (400, "INVALID_REQUEST", "a parameter is not valid"),
    "THROTTLED": (429, "THROTTLED", "too many requests, try again shortly"),
    "QUOTA_EXCEEDED": (429, "THROTTLED", "too many requests, try again later"),
    "INTEGRATION_TIMEOUT": (504, "UPSTREAM_TIMEOUT", "the request took too long, try again"),
    "DEFAULT_4XX": (None, "$context.error.responseType", "the API gateway refused the request"),
    "DEFAULT_5XX": (None, "$context.error.responseType", "the API gateway could not answer, try again"),
}


def gateway_responses() -> dict[str, Any]:
    """`x-amazon-apigateway-gateway-responses`: part of the API's definition, so deployed with it."""
    responses: dict[str, Any] = {}
    for response_type, (status, code, message) in _GATEWAY_REFUSALS.items():
        response: dict[str, Any] = {
            "responseTemplates": {
                "application/json": json.dumps({"code": code, "message": message}, separators=(",", ":")),
            },
        }
        if status is not None:
            response["statusCode"] = str(status)
        responses[response_type] = response
    return responses


def _rest_api(stage: Stage) -> dict[str, Any]:
    """What the stage adds to the RestAPI Chalice generates (its endpoint type is in .chalice/config.json)."""
    return {
        "Properties": {
            "Name": api_name(stage),
            "TracingEnabled": stage.traced,
            "DefinitionBody": {"x-amazon-apigateway-gateway-responses": gateway_responses()},
            "MethodSettings": [{
                "ResourcePath": "/*",
                "HttpMethod": "*",
                "ThrottlingRateLimit": stage.limits.api_rate,
                "ThrottlingBurstLimit": stage.limits.api_burst,
            }],
        },
    }


# --- All of it -----------------------------------------------------------------------

def _tables(models: Iterable[Any], prefix: str) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for model in models:
        name = table_resource_name(model)
        if name in resources:
            raise ValueError(f"two models name the table {model.Meta.table!r}")
        resources[name] = table_resource(model, prefix)
    return resources


def _check_access(app: Any, models: list[Any], stage: Stage) -> None:
    secrets = [name for name in Settings.model_fields if f"{name}_parameter" in Settings.model_fields]
    found = access.problems([function.name for function in functions(app)], models, secrets)
    missing = [setting for setting in secrets if f"SIYU_{setting.upper()}_PARAMETER" not in stage.environment]
    found += [f"stage {stage.name}: no SSM parameter for {setting}" for setting in missing]
    if found:
        raise ValueError("infra/access.py does not describe app.py:\n  " + "\n  ".join(found))


def merge_template(
    app: Any, models: Iterable[Any], stage_name: str, config_path: Path = CHALICE_CONFIG,
) -> dict[str, Any]:
    """What `chalice package --merge-template` merges into the stage's template."""
    stage = load_stage(stage_name, config_path)
    models = list(models)
    _check_access(app, models, stage)
    app_functions = functions(app)
    has_api = bool(app.routes)
    has_jobs = any(function.invoked_by_eventbridge for function in app_functions)
    resources: dict[str, Any] = {
        **_tables(models, stage.table_prefix),
        **{name: resource for machine in MACHINES for name, resource in _state_machine(app, stage, machine).items()},
        **function_resources(app, models, stage, {machine.resource: machine.arn(stage.name) for machine in MACHINES}),
        **alarm_resources(
            stage,
            app_functions,
            api_name=api_name(stage) if has_api else None,
            state_machine=STATE_MACHINE_RESOURCE,
            dead_letter_queue=DEAD_LETTER_QUEUE_RESOURCE if has_jobs else None,
            segmented_machine=SEGMENTED_MACHINE_RESOURCE,
        ),
    }
    if has_api:
        resources[REST_API_RESOURCE] = _rest_api(stage)
    return {
        "Globals": {
            "Function": {
                "Environment": {"Variables": {machine.setting: machine.arn(stage.name) for machine in MACHINES}},
            },
        },
        "Resources": resources,
        "Outputs": {
            **{f"{machine.resource}Arn": {"Value": {"Ref": machine.resource}} for machine in MACHINES},
            "AlarmTopicArn": {"Value": {"Ref": ALARM_TOPIC_RESOURCE}},
        },
    }
