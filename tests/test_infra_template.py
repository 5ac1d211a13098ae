"""`make package`'s template: tables as the models say, ARNs by partition, the same ASL,
a role per function with only what it declares, production settings, lint- and checkov-clean.

The stages are packaged once per session with `--template-only` (no pip, no
network); the template is the one a full package writes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import app
from chalicelib.config import Settings, settings
from chalicelib.db import all_models
from chalicelib.orders.config import OrdersConfig
from infra import access, asl, checkov_scan
from infra.functions import LIMITS, Function, functions
from infra.package import package
from infra.stage import stage_environment
from infra.template import MACHINES, SEGMENTED_MACHINE_RESOURCE, STATE_MACHINE_RESOURCE

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


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.parametrize("stage", STAGES)
def test_every_arn_is_built_with_the_stacks_partition(packaged, stage):
    for written in packaged[stage].parent.parent.glob("**/*.json"):
        for text in strings(load(written)):
            for arn in re.finditer(r"\barn:", text):
                assert text.startswith("arn:${AWS::Partition}:", arn.start()), (written.name, text)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("described", MACHINES, ids=lambda machine: machine.suffix)
def test_each_state_machine_is_its_asl_file_after_substitution(packaged, stage, described):
    template = load(packaged[stage])
    machine = template["Resources"][described.resource]["Properties"]
    functions = resources_of(template, "AWS::Serverless::Function")
    values = {"AWS::Partition": "aws-cn", "AWS::Region": "cn-north-1", "AWS::AccountId": "111122223333"}
    values.update({f"{name}.Arn": f"arn:aws-cn:lambda:cn-north-1:111122223333:function:{name}" for name in functions})

    deployed = json.loads(asl.substitute(machine["DefinitionString"]["Fn::Sub"], values.__getitem__))
    assert deployed == json.loads(asl.render(values.__getitem__, described.definition))

    # The functions find the machine by the ARN its name gives (a Ref would be a dependency cycle).
    arn = template["Globals"]["Function"]["Environment"]["Variables"][described.setting]["Fn::Sub"]
    assert arn == f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{machine['StateMachineName']}"
    invoked = {f"{name}.Arn" for name in asl.function_resources(machine["DefinitionString"]["Fn::Sub"])}
    assert invoked <= set(values) and invoked


@pytest.mark.parametrize("stage", STAGES)
def test_the_order_machine_settles_with_its_task_and_the_segmented_one_maps_segments_to_its_scan(packaged, stage):
    resources = load(packaged[stage])["Resources"]
    order = json.loads(resources[STATE_MACHINE_RESOURCE]["Properties"]["DefinitionString"]["Fn::Sub"])
    assert order["States"]["SettlePayment"]["Parameters"]["FunctionName"] == "${OrderSettlePayment.Arn}"
    segmented = json.loads(resources[SEGMENTED_MACHINE_RESOURCE]["Properties"]["DefinitionString"]["Fn::Sub"])
    segments = segmented["States"]["Segments"]
    assert (segments["Type"], segments["ItemsPath"]) == ("Map", "$.segments")
    scan = segments["ItemProcessor"]["States"]["ScanSegment"]
    assert scan["Parameters"]["FunctionName"] == "${SegmentScan.Arn}"
    assert segments["ItemProcessor"]["States"]["SegmentDone"]["Default"] == "ScanSegment"  # again until done
    assert segmented["States"]["Finish"]["Parameters"]["FunctionName"] == "${SegmentFinish.Arn}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_job_and_whole_table_task_has_its_own_timeout_and_memory(packaged, stage):
    resources = load(packaged[stage])["Resources"]
    limited = [function for function in APP_FUNCTIONS if function.invoked_by_eventbridge or function.name.startswith("segment_")]
    assert {function.name for function in limited} == set(LIMITS)
    for function in limited:
        properties = resources[function.resource]["Properties"]
        assert (properties["Timeout"], properties["MemorySize"]) == LIMITS[function.name], function.name
    assert resources["SegmentScan"]["Properties"]["ReservedConcurrentExecutions"] >= 8


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_is_packaged_with_the_stage_environment(packaged, stage):
    template = load(packaged[stage])
    functions_ = resources_of(template, "AWS::Serverless::Function")
    handlers = {function["Properties"]["Handler"] for function in functions_.values()}
    assert {f"app.{fn.name}" for fn in app.app.pure_lambda_functions} <= handlers
    environment = stage_environment(stage)
    for function in functions_.values():
        assert function["Properties"]["Environment"]["Variables"] == environment


@pytest.mark.parametrize("stage", ("local", *STAGES))
def test_every_secret_setting_names_its_ssm_parameter_in_every_stage(stage):
    environment = stage_environment(stage)
    for name in Settings.model_fields:
        if name.endswith("_parameter"):
            assert environment.get(f"SIYU_{name.upper()}", "").startswith(f"/siyu/{stage}/"), name


@pytest.mark.parametrize("stage", STAGES)
def test_cfn_lint_finds_nothing_in_the_global_and_china_regions(packaged, stage):
    linted = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--regions", "us-east-1", "cn-north-1", "--",
         str(packaged[stage])],
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


# --- Each function's own role, from infra/access.py ---------------------------------------

def role_of(template: dict[str, Any], function: Function) -> dict[str, Any]:
    resource = template["Resources"][function.resource]
    role_name = resource["Properties"]["Role"]["Fn::GetAtt"][0]
    return template["Resources"][role_name]["Properties"]


def statements_of(template: dict[str, Any], function: Function) -> list[dict[str, Any]]:
    """The statements of the function's role: its own policies and any policy attached to it."""
    role_name = template["Resources"][function.resource]["Properties"]["Role"]["Fn::GetAtt"][0]
    documents = [policy["PolicyDocument"] for policy in role_of(template, function).get("Policies", [])]
    documents += [
        policy["Properties"]["PolicyDocument"]
        for policy in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_name} in policy["Properties"].get("Roles", [])
    ]
    return [statement for document in documents for statement in document["Statement"]]


def granted(template: dict[str, Any], function: Function, service: str) -> dict[str, set[str]]:
    """{action: resources} of the function's role, for one service's actions (`dynamodb`, `ssm`)."""
    found: dict[str, set[str]] = {}
    for statement in statements_of(template, function):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            if action.split(":")[0] in (service, "*"):
                found.setdefault(action, set()).update(
                    r["Fn::Sub"] if isinstance(r, dict) and "Fn::Sub" in r else json.dumps(r) for r in resources
                )
    return found


def table_arn(stage: str, table: str) -> str:
    return f"arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/siyu-{stage}-{table}"


def declared_tables(function: Function, verb: access.Verb) -> set[str]:
    """The tables the function's declaration gives `verb` on, resolved here from the models' modules."""
    declaration = access.ACCESS[function.name]
    tables = set()
    for model in all_models():
        domain = model.__module__.split(".")[1]
        verbs = declaration.domains.get(domain, access.Verb(0))
        verbs |= declaration.tables.get(model.Meta.table, access.Verb(0))
        if verb in verbs:
            tables.add(model.Meta.table)
    return tables


APP_FUNCTIONS = functions(app.app)
JOBS_AND_TASKS = [function for function in APP_FUNCTIONS if function.name != access.API_HANDLER]
VERB_ACTIONS = {
    access.READ: "dynamodb:GetItem",
    access.SCAN: "dynamodb:Scan",
    access.WRITE: "dynamodb:UpdateItem",
    access.DELETE: "dynamodb:DeleteItem",
}


@pytest.mark.parametrize("stage", STAGES)
def test_each_function_has_a_role_of_its_own_and_no_policy_shared_with_others(packaged, stage):
    template = load(packaged[stage])
    roles = [template["Resources"][f.resource]["Properties"]["Role"]["Fn::GetAtt"][0] for f in APP_FUNCTIONS]
    assert len(set(roles)) == len(APP_FUNCTIONS)
    assert resources_of(template, "AWS::IAM::Policy") == {}
    assert resources_of(template, "AWS::IAM::ManagedPolicy") == {}
    for function in APP_FUNCTIONS:
        assert "ManagedPolicyArns" not in role_of(template, function)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", APP_FUNCTIONS, ids=lambda function: function.name)
def test_a_function_may_use_only_the_tables_its_declaration_names_with_the_verbs_it_names(packaged, stage, function):
    template = load(packaged[stage])
    dynamodb = granted(template, function, "dynamodb")
    for verb, action in VERB_ACTIONS.items():
        expected = {table_arn(stage, table) for table in declared_tables(function, verb)}
        tables = {arn for arn in dynamodb.get(action, set()) if "/index/" not in arn}
        assert tables == expected, (function.name, action)
    for resources in dynamodb.values():
        assert not any("*" in resource for resource in resources), function.name


@pytest.mark.parametrize("stage", STAGES)
def test_the_jobs_touch_only_their_own_tables(packaged, stage):
    template = load(packaged[stage])
    by_name = {function.name: function for function in APP_FUNCTIONS}

    def tables(name: str, action: str) -> set[str]:
        arns = granted(template, by_name[name], "dynamodb").get(action, set())
        return {arn.rsplit(f"siyu-{stage}-", 1)[1] for arn in arns if "/index/" not in arn}

    # Whole tables are visited by the segmented machine's task; a job reads at most the store directory.
    scanners = {name: tables(name, "dynamodb:Scan") for name in by_name if tables(name, "dynamodb:Scan")}
    assert {name for name, scanned in scanners.items() if by_name[name].invoked_by_eventbridge and scanned != {"stores"}} == set()
    assert scanners["segment_scan"] == {"points-balances", "identities", "inventory"}
    assert tables("ledger-audit", "dynamodb:UpdateItem") == tables("ledger-audit", "dynamodb:PutItem") == set()
    assert tables("points-expiry", "dynamodb:UpdateItem") == {"points-balances", "points-transfers"}
    assert tables("appointment-no-shows", "dynamodb:GetItem") == {"appointments"}
    assert tables("order_notify_store", "dynamodb:PutItem") == {"order-task-tokens"}
    assert tables("order_notify_store", "dynamodb:GetItem") == {"orders", "order-task-tokens"}
    writers_of_idempotency = {name for name in by_name if "idempotency" in tables(name, "dynamodb:PutItem")}
    assert writers_of_idempotency == {access.API_HANDLER}
    deleters = {name for name, fn in by_name.items() if "dynamodb:DeleteItem" in granted(template, fn, "dynamodb")}
    # The waits delete the token they answer themselves when the order moved on before they parked.
    assert deleters == {access.API_HANDLER, "appointment-reminders", "coupon-expiry", "order_notify_store",
                        "order_await", "order_dispatch_courier", "order_reroute", "segment_scan"}


@pytest.mark.parametrize("stage", STAGES)
def test_reading_a_table_includes_its_indexes_by_name(packaged, stage):
    template = load(packaged[stage])
    reminders = next(function for function in APP_FUNCTIONS if function.name == "appointment-reminders")
    readable = granted(template, reminders, "dynamodb")["dynamodb:Query"]
    assert table_arn(stage, "appointments") + "/index/open-by-day" in readable
    assert not any(arn.endswith("/index/*") for arn in readable)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", APP_FUNCTIONS, ids=lambda function: function.name)
def test_a_function_reads_exactly_the_ssm_parameters_it_declares(packaged, stage, function):
    template = load(packaged[stage])
    environment = stage_environment(stage)
    prefix = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
    expected = {prefix + environment[f"SIYU_{setting.upper()}_PARAMETER"]
                for setting in access.ACCESS[function.name].parameters}
    ssm = granted(template, function, "ssm")
    assert set(ssm) <= {"ssm:GetParameter"}
    assert ssm.get("ssm:GetParameter", set()) == expected


@pytest.mark.parametrize("stage", STAGES)
def test_no_job_or_state_machine_task_can_read_the_token_signing_key(packaged, stage):
    template = load(packaged[stage])
    signing_key = stage_environment(stage)["SIYU_TOKEN_SIGNING_KEY_PARAMETER"]
    for function in JOBS_AND_TASKS:
        for resources in granted(template, function, "ssm").values():
            assert not any(resource.endswith(signing_key) or "*" in resource for resource in resources), function.name
    api = next(function for function in APP_FUNCTIONS if function.name == access.API_HANDLER)
    assert any(r.endswith(signing_key) for r in granted(template, api, "ssm")["ssm:GetParameter"])


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", APP_FUNCTIONS, ids=lambda function: function.name)
def test_a_function_may_write_only_to_its_own_log_group_which_has_a_retention(packaged, stage, function):
    template = load(packaged[stage])
    logs = granted(template, function, "logs")
    assert set(logs) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    (group_arn,) = {resource for resources in logs.values() for resource in resources}
    group = json.loads(group_arn)["Fn::GetAtt"]
    assert group[1] == "Arn"
    log_group = template["Resources"][group[0]]
    name = template["Resources"][function.resource]["Properties"]["FunctionName"]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{name}"
    assert log_group["Properties"]["RetentionInDays"] > 0


@pytest.mark.parametrize("stage", STAGES)
def test_every_log_group_keeps_logs_for_a_bounded_time(packaged, stage):
    template = load(packaged[stage])
    groups = resources_of(template, "AWS::Logs::LogGroup")
    assert len(groups) == len(APP_FUNCTIONS) + len(MACHINES)  # and each state machine's
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] in (30, 365)


# --- The stack, production-grade --------------------------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_the_api_is_a_regional_endpoint_as_the_china_regions_require(packaged, stage):
    api = load(packaged[stage])["Resources"]["RestAPI"]["Properties"]
    endpoint = api["EndpointConfiguration"]
    assert (endpoint["Type"] if isinstance(endpoint, dict) else endpoint) == "REGIONAL"


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_stage_is_throttled(packaged, stage):
    api = load(packaged[stage])["Resources"]["RestAPI"]["Properties"]
    (every_method,) = [s for s in api.get("MethodSettings", []) if (s["ResourcePath"], s["HttpMethod"]) == ("/*", "*")]
    assert 0 < every_method["ThrottlingRateLimit"] <= every_method["ThrottlingBurstLimit"]


def alarms_by_metric(template: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        found.setdefault((properties["Namespace"], properties["MetricName"]), []).append(properties)
    return found


def dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_notifies_the_one_alarm_topic(packaged, stage):
    template = load(packaged[stage])
    (topic,) = resources_of(template, "AWS::SNS::Topic")
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert alarms
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]


@pytest.mark.parametrize("stage", STAGES)
def test_alarms_watch_breaches_5xx_errors_throttles_executions_and_dead_letters(packaged, stage):
    template = load(packaged[stage])
    alarms = alarms_by_metric(template)
    resources = template["Resources"]

    for metric in ("LedgerBreaches", "InventoryBreaches", "CouponLockBreaches", "PaymentAmountMismatch",
                   "RefundNotSucceeded"):
        (watched_metric,) = alarms[("siyu", metric)]
        assert dimensions(watched_metric) == {"service": "siyu"} and watched_metric["Threshold"] == 0, metric
    (api_errors,) = alarms[("AWS/ApiGateway", "5XXError")]
    assert api_errors["Statistic"] == "Average" and 0 < api_errors["Threshold"] < 1  # a rate
    assert dimensions(api_errors) == {"ApiName": resources["RestAPI"]["Properties"]["Name"], "Stage": "api"}
    for metric in ("Errors", "Throttles"):
        watched = {json.dumps(dimensions(alarm)["FunctionName"]) for alarm in alarms[("AWS/Lambda", metric)]}
        assert watched == {json.dumps({"Ref": function.resource}) for function in APP_FUNCTIONS}, metric
    failed = alarms[("AWS/States", "ExecutionsFailed")]
    assert [dimensions(alarm) for alarm in failed] == [{"StateMachineArn": {"Ref": machine.resource}} for machine in MACHINES]
    (dead_letters,) = alarms[("AWS/SQS", "ApproximateNumberOfMessagesVisible")]
    (queue,) = resources_of(template, "AWS::SQS::Queue")
    assert dimensions(dead_letters) == {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}}


def invoked_by_eventbridge(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: function for name, function in resources_of(template, "AWS::Serverless::Function").items()
        if any(event["Type"] in ("Schedule", "CloudWatchEvent")
               for event in function["Properties"].get("Events", {}).values())
    }


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_eventbridge_invokes_parks_failed_events_in_a_dead_letter_queue_it_may_send_to(packaged, stage):
    template = load(packaged[stage])
    jobs = invoked_by_eventbridge(template)
    assert len(jobs) == len(app.app.event_sources)
    by_resource = {function.resource: function for function in APP_FUNCTIONS}
    for name, job in jobs.items():
        dead_letters = job["Properties"]["DeadLetterQueue"]
        assert dead_letters["Type"] == "SQS"
        queue = dead_letters["TargetArn"]["Fn::GetAtt"][0]
        assert template["Resources"][queue]["Type"] == "AWS::SQS::Queue"
        sendable = granted(template, by_resource[name], "sqs")
        assert sendable == {"sqs:SendMessage": {json.dumps(dead_letters["TargetArn"])}}


@pytest.mark.parametrize("stage", STAGES)
def test_the_jobs_have_reserved_concurrency_and_the_api_does_not(packaged, stage):
    template = load(packaged[stage])
    for name, job in invoked_by_eventbridge(template).items():
        assert job["Properties"]["ReservedConcurrentExecutions"] >= 1, name
    assert "ReservedConcurrentExecutions" not in template["Resources"]["APIHandler"]["Properties"]


@pytest.mark.parametrize("stage", STAGES)
def test_the_state_machine_logs_to_a_group_with_retention_and_is_traced(packaged, stage):
    template = load(packaged[stage])
    machine = template["Resources"][STATE_MACHINE_RESOURCE]["Properties"]
    logging = machine["LoggingConfiguration"]
    assert logging["Level"] in ("ALL", "ERROR", "FATAL")
    (destination,) = logging["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert template["Resources"][group]["Properties"]["RetentionInDays"] > 0
    assert machine["TracingConfiguration"] == {"Enabled": True}


def task_states(scope: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in scope["States"].items():
        if state["Type"] == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from task_states(branch)
        for field in ("ItemProcessor", "Iterator"):
            if field in state:
                yield from task_states(state[field])


@pytest.mark.parametrize("stage", STAGES)
def test_every_state_waiting_for_a_task_token_times_out(packaged, stage):
    machine = load(packaged[stage])["Resources"][STATE_MACHINE_RESOURCE]["Properties"]
    definition = json.loads(machine["DefinitionString"]["Fn::Sub"])
    waiting = [(name, state) for name, state in task_states(definition) if asl.waits_for_token(state)]
    assert waiting
    deadlines = OrdersConfig().deadlines()
    for name, state in waiting:
        # Each wait's deadline is the orders configuration's, carried by the execution's input.
        path = state.get("TimeoutSecondsPath", "")
        assert path.startswith("$.deadlines."), name
        assert 0 < deadlines[path.removeprefix("$.deadlines.")] <= 30 * 24 * 3600, name


def test_a_state_waiting_for_its_token_without_a_timeout_is_refused():
    definition = json.loads(asl.render(lambda variable: "${" + variable + "}"))
    del definition["States"]["AwaitStore"]["TimeoutSecondsPath"]
    assert asl.problems(definition) == [
        "definition.States.AwaitStore: "
        "a task waiting for its token needs TimeoutSeconds or HeartbeatSeconds",
    ]


@pytest.mark.parametrize("stage", STAGES)
def test_every_table_is_protected_from_deletion(packaged, stage):
    for name, table in resources_of(load(packaged[stage]), "AWS::DynamoDB::Table").items():
        assert table["Properties"]["DeletionProtectionEnabled"] is True, name


# --- checkov ------------------------------------------------------------------------------------

def test_checkov_finds_nothing_but_the_justified_skips(packaged):
    skips = checkov_scan.load_skips()
    assert all(skip.reason.strip() for skip in skips)
    report = checkov_scan.scan(packaged, skips)
    print(report.summary())
    assert report.failed == []
    assert report.unused == [], "a skip that matches no finding any more: remove it from infra/checkov-skips.yaml"


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
