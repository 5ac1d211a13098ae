"""The CloudFormation Chalice does not generate, merged into its template.

Chalice generates the functions, their roles, the API and the schedules. This
module adds, derived rather than copied:

- a DynamoDB table per pynamodb model (`chalicelib.db.all_models()`): keys,
  attribute types, indexes and TTL from the model, named with the stage's
  `SIYU_TABLE_PREFIX` from .chalice/config.json, on-demand, with
  point-in-time recovery, kept when the stack goes;
- the order state machine from infra/order.asl.json (`infra.asl.render`),
  its role, and its ARN in every function's environment;
- what the functions may touch: the stage's tables, the order executions
  and task tokens, the stage's SSM parameters;
- API Gateway's own refusals (what never reaches the function: an unknown
  method, a body too large, throttling) in the API's `{code, message}` shape,
  never repeating a request header.

Every ARN is built with `${AWS::Partition}`: a brand's stack runs in aws-cn too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chalice.utils import to_cfn_resource_name

from infra import asl

__all__ = [
    "PROJECT",
    "STATE_MACHINE_RESOURCE",
    "DATA_ACCESS_POLICY_RESOURCE",
    "stage_environment",
    "state_machine_name",
    "table_resource_name",
    "table_resource",
    "function_names",
    "function_role_resources",
    "gateway_responses",
    "merge_template",
]

PROJECT = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = PROJECT / ".chalice" / "config.json"
REST_API_RESOURCE = "RestAPI"
STATE_MACHINE_RESOURCE = "OrderStateMachine"
STATE_MACHINE_ROLE_RESOURCE = "OrderStateMachineRole"
DATA_ACCESS_POLICY_RESOURCE = "DataAccessPolicy"

_DYNAMODB_ACTIONS = [
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
]


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _arn(service: str, resource: str) -> dict[str, str]:
    return _sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def stage_environment(stage: str, config_path: Path = CHALICE_CONFIG) -> dict[str, str]:
    """The environment Chalice gives the stage's functions (top level, then the stage)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if stage not in config.get("stages", {}):
        raise ValueError(f"{config_path} has no stage {stage!r}")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def _stage_traced(stage: str, config_path: Path = CHALICE_CONFIG) -> bool:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    return bool(config["stages"][stage].get("xray", config.get("xray", False)))


def state_machine_name(stage: str) -> str:
    return f"siyu-{stage}-order"


def _state_machine_arn(stage: str) -> dict[str, str]:
    # Built from the name, not `Ref`: the functions the machine invokes read it, and
    # a Ref would make the machine and its functions depend on each other.
    return _arn("states", f"stateMachine:{state_machine_name(stage)}")


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


# --- Functions -----------------------------------------------------------------

def function_names(app: Any) -> list[str]:
    """The names Chalice gives the app's Lambda functions (and their roles)."""
    names = ["api_handler"] if app.routes else []
    names.extend(function.name for function in app.pure_lambda_functions)
    names.extend(source.name for source in app.event_sources)
    names.extend(authorizer.name for authorizer in app.builtin_auth_handlers)
    return names


def function_role_resources(app: Any) -> list[str]:
    """Chalice's role resource per function (`autogen_policy` false gives each its own)."""
    return [to_cfn_resource_name(f"{name}_role") for name in function_names(app)]


def _pure_function_resources(app: Any) -> set[str]:
    return {to_cfn_resource_name(function.name) for function in app.pure_lambda_functions}


def _data_access_policy(app: Any, stage: str, environment: dict[str, str]) -> dict[str, Any]:
    prefix = environment["SIYU_TABLE_PREFIX"]
    parameters = sorted(value for name, value in environment.items() if name.endswith("_PARAMETER"))
    statements: list[dict[str, Any]] = [
        {
            "Sid": "StageTables",
            "Effect": "Allow",
            "Action": _DYNAMODB_ACTIONS,
            "Resource": [_arn("dynamodb", f"table/{prefix}*"), _arn("dynamodb", f"table/{prefix}*/index/*")],
        },
        {
            "Sid": "OrderExecutions",
            "Effect": "Allow",
            "Action": ["states:StartExecution"],
            "Resource": [_state_machine_arn(stage)],
        },
        {
            "Sid": "OrderExecutionState",
            "Effect": "Allow",
            "Action": ["states:DescribeExecution", "states:StopExecution"],
            "Resource": [_arn("states", f"execution:{state_machine_name(stage)}:*")],
        },
        {
            # Task-token calls name no resource; IAM only accepts "*" for them.
            "Sid": "OrderTaskTokens",
            "Effect": "Allow",
            "Action": ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
            "Resource": "*",
        },
    ]
    if parameters:
        statements.append({
            "Sid": "StageParameters",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter"],
            "Resource": [_arn("ssm", f"parameter{name}") for name in parameters],
        })
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": f"siyu-{stage}-data-access",
            "Roles": [{"Ref": role} for role in function_role_resources(app)],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
        },
    }


# --- The state machine ------------------------------------------------------------

def _keep_placeholder(variable: str) -> str:
    return "${" + variable + "}"


def _state_machine(app: Any, stage: str) -> dict[str, Any]:
    definition = asl.render(_keep_placeholder)
    invoked = sorted(asl.function_resources(definition))
    unknown = set(invoked) - _pure_function_resources(app)
    if unknown:
        raise ValueError(f"infra/order.asl.json invokes {sorted(unknown)}, which app.py does not define")
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "states.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }],
            },
            "Policies": [{
                "PolicyName": "InvokeOrderTasks",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Action": "lambda:InvokeFunction",
                        "Resource": [
                            arn
                            for resource in invoked
                            for arn in ({"Fn::GetAtt": [resource, "Arn"]}, _sub(f"${{{resource}.Arn}}:*"))
                        ],
                    }],
                },
            }],
        },
    }
    machine = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": state_machine_name(stage),
            "StateMachineType": "STANDARD",
            "RoleArn": {"Fn::GetAtt": [STATE_MACHINE_ROLE_RESOURCE, "Arn"]},
            "DefinitionString": _sub(definition),
            "TracingConfiguration": {"Enabled": _stage_traced(stage)},
        },
    }
    return {STATE_MACHINE_ROLE_RESOURCE: role, STATE_MACHINE_RESOURCE: machine}


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


# --- All of it -----------------------------------------------------------------------

def merge_template(app: Any, models: Iterable[Any], stage: str, config_path: Path = CHALICE_CONFIG) -> dict[str, Any]:
    """What `chalice package --merge-template` merges into the stage's template."""
    environment = stage_environment(stage, config_path)
    prefix = environment.get("SIYU_TABLE_PREFIX")
    if prefix != f"siyu-{stage}-":
        raise ValueError(f"stage {stage}: SIYU_TABLE_PREFIX must be 'siyu-{stage}-', not {prefix!r}")
    resources: dict[str, Any] = {}
    for model in models:
        name = table_resource_name(model)
        if name in resources:
            raise ValueError(f"two models name the table {model.Meta.table!r}")
        resources[name] = table_resource(model, prefix)
    resources.update(_state_machine(app, stage))
    resources[DATA_ACCESS_POLICY_RESOURCE] = _data_access_policy(app, stage, environment)
    if app.routes:
        resources[REST_API_RESOURCE] = {
            "Properties": {"DefinitionBody": {"x-amazon-apigateway-gateway-responses": gateway_responses()}},
        }
    return {
        "Globals": {
            "Function": {
                "Environment": {"Variables": {"SIYU_STATE_MACHINE_ARN": _state_machine_arn(stage)}},
            },
        },
        "Resources": resources,
        "Outputs": {
            "OrderStateMachineArn": {"Value": {"Ref": STATE_MACHINE_RESOURCE}},
        },
    }
