"""`make package`'s template: tables as the models say, ARNs by partition, the same ASL, lint-clean.

The stages are packaged once per session with `--template-only` (no pip, no
network); the template is the one a full package writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

import app
from chalicelib.config import Settings, settings
from chalicelib.db import all_models
from infra import asl
from infra.package import package
from infra.template import STATE_MACHINE_RESOURCE, stage_environment

STAGES = ("dev", "prod")


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("infra-build")
    return {stage: package(stage, out, template_only=True) for stage in STAGES}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == kind}


def keys(schema: list[dict[str, str]]) -> dict[str, str]:
    return {key["AttributeName"]: key["KeyType"] for key in schema}


def indexes(described: list[dict[str, Any]] | None) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    return {
        index["IndexName"]: (
            keys(index["KeySchema"]),
            {"ProjectionType": index["Projection"]["ProjectionType"],
             **({"NonKeyAttributes": sorted(index["Projection"]["NonKeyAttributes"])}
                if index["Projection"].get("NonKeyAttributes") else {})},
        )
        for index in described or []
    }


@pytest.mark.parametrize("stage", STAGES)
def test_the_tables_are_exactly_the_models_as_dynamodb_local_built_them(packaged, stack, stage):
    template = load(packaged[stage])
    tables = {t["Properties"]["TableName"]: t for t in resources_of(template, "AWS::DynamoDB::Table").values()}
    prefix = f"siyu-{stage}-"
    assert stage_environment(stage)["SIYU_TABLE_PREFIX"] == prefix
    models = all_models()
    assert sorted(tables) == sorted(prefix + model.Meta.table for model in models)

    # The stack created each table from its model with pynamodb; DynamoDB Local says what it built.
    local = boto3.client("dynamodb", region_name=settings().region, endpoint_url=settings().dynamodb_endpoint)
    for model in models:
        declared = tables[prefix + model.Meta.table]
        properties = declared["Properties"]
        built_name = settings().table_name(model.Meta.table)
        built = local.describe_table(TableName=built_name)["Table"]
        assert keys(properties["KeySchema"]) == keys(built["KeySchema"]), model.Meta.table
        assert properties["KeySchema"][0]["KeyType"] == "HASH"
        assert sorted(properties["AttributeDefinitions"], key=str) == sorted(built["AttributeDefinitions"], key=str)
        assert indexes(properties.get("GlobalSecondaryIndexes")) == indexes(built.get("GlobalSecondaryIndexes"))
        assert indexes(properties.get("LocalSecondaryIndexes")) == indexes(built.get("LocalSecondaryIndexes"))
        ttl = local.describe_time_to_live(TableName=built_name)["TimeToLiveDescription"]
        built_ttl = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None
        declared_ttl = properties.get("TimeToLiveSpecification")
        assert (declared_ttl and declared_ttl["AttributeName"]) == built_ttl == model.ttl_attribute_name()
        if declared_ttl:
            assert declared_ttl["Enabled"] is True
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert declared["DeletionPolicy"] == declared["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("stage", STAGES)
def test_no_arn_names_the_aws_partition_literally(packaged, stage):
    for written in packaged[stage].parent.parent.glob("**/*.json"):
        assert "arn:aws:" not in written.read_text(encoding="utf-8"), written


@pytest.mark.parametrize("stage", STAGES)
def test_the_state_machine_is_the_asl_file_after_substitution(packaged, stage):
    template = load(packaged[stage])
    machine = template["Resources"][STATE_MACHINE_RESOURCE]["Properties"]
    functions = resources_of(template, "AWS::Serverless::Function")
    values = {"AWS::Partition": "aws-cn", "AWS::Region": "cn-north-1", "AWS::AccountId": "111122223333"}
    values.update({f"{name}.Arn": f"arn:aws-cn:lambda:cn-north-1:111122223333:function:{name}" for name in functions})

    deployed = json.loads(asl.substitute(machine["DefinitionString"]["Fn::Sub"], values.__getitem__))
    assert deployed == json.loads(asl.render(values.__getitem__))
    assert deployed["States"]["Reserve"]["Parameters"]["FunctionName"].endswith(":function:OrderReserve")

    # The functions find the machine by the ARN its name gives (a Ref would be a dependency cycle).
    arn = template["Globals"]["Function"]["Environment"]["Variables"]["SIYU_STATE_MACHINE_ARN"]["Fn::Sub"]
    assert arn == f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{machine['StateMachineName']}"
    invoked = {f"{name}.Arn" for name in asl.function_resources(machine["DefinitionString"]["Fn::Sub"])}
    assert invoked <= set(values) and invoked


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_is_packaged_with_the_stage_environment_and_data_access(packaged, stage):
    template = load(packaged[stage])
    functions = resources_of(template, "AWS::Serverless::Function")
    handlers = {function["Properties"]["Handler"] for function in functions.values()}
    assert {f"app.{fn.name}" for fn in app.app.pure_lambda_functions} <= handlers
    environment = stage_environment(stage)
    roles = set()
    for function in functions.values():
        assert function["Properties"]["Environment"]["Variables"] == environment
        roles.add(function["Properties"]["Role"]["Fn::GetAtt"][0])
    policy = template["Resources"]["DataAccessPolicy"]["Properties"]
    assert {role["Ref"] for role in policy["Roles"]} == roles


@pytest.mark.parametrize("stage", ("local", *STAGES))
def test_every_secret_setting_names_its_ssm_parameter_in_every_stage(stage):
    environment = stage_environment(stage)
    for name in Settings.model_fields:
        if name.endswith("_parameter"):
            assert environment.get(f"SIYU_{name.upper()}", "").startswith(f"/siyu/{stage}/"), name


@pytest.mark.parametrize("stage", STAGES)
def test_the_functions_may_read_exactly_the_stages_parameters(packaged, stage):
    template = load(packaged[stage])
    statements = template["Resources"]["DataAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    readable = next(s for s in statements if s["Action"] == ["ssm:GetParameter"])["Resource"]
    parameters = sorted(v for k, v in stage_environment(stage).items() if k.endswith("_PARAMETER"))
    prefix = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
    assert readable == [{"Fn::Sub": prefix + name} for name in parameters]


@pytest.mark.parametrize("stage", STAGES)
def test_cfn_lint_finds_nothing_in_the_global_and_china_regions(packaged, stage):
    linted = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--regions", "us-east-1", "cn-north-1", "--",
         str(packaged[stage])],
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_the_gateways_own_refusals_have_the_apis_shape_and_repeat_no_header(packaged, stage):
    definition = load(packaged[stage])["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    responses = definition["x-amazon-apigateway-gateway-responses"]
    assert {"MISSING_AUTHENTICATION_TOKEN", "UNSUPPORTED_MEDIA_TYPE", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"
    for response in responses.values():
        body = json.loads(response["responseTemplates"]["application/json"])
        assert set(body) == {"code", "message"}
        assert "$context.error.message" not in json.dumps(body) and "header" not in json.dumps(body)
    # The catch-all route answers unknown paths and methods from the function, in the same shape.
    assert "/{proxy+}" in definition["paths"]
