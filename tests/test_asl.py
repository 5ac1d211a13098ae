"""infra/asl.py: the checks moto does not make, and the Fn::Sub substitution both sides share."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from infra import asl


def order_definition() -> dict[str, Any]:
    return json.loads(asl.render(lambda variable: "${" + variable + "}"))


def minimal(**states: Any) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states}


def test_the_order_state_machine_is_valid():
    assert asl.problems(order_definition()) == []


def test_the_order_state_machine_waits_for_the_store_with_a_task_token():
    state = order_definition()["States"]["AwaitStore"]
    assert state["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert state["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"


def test_a_next_naming_no_state_is_refused():
    definition = order_definition()
    definition["States"]["SettlePayment"]["Next"] = "AwaitStor"
    stranded = sorted(set(definition["States"]) - {"SettlePayment", "Compensate", "Refunding", "CompensationFailed"})
    assert asl.problems(definition) == [
        "definition.States.SettlePayment.Next: no state named 'AwaitStor'",
        *(f"definition.States.{name}: not reachable from 'SettlePayment'" for name in stranded),
    ]


def test_catch_and_default_targets_must_exist():
    definition = minimal(
        Pick={"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "Work"}], "Default": "Nowhere"},
        Work={"Type": "Task", "Resource": "arn:x", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Gone"}], "End": True},
    )
    assert asl.problems(definition) == [
        "definition.States.Pick.Default: no state named 'Nowhere'",
        "definition.States.Work.Catch[0].Next: no state named 'Gone'",
    ]


def test_start_at_must_name_a_state():
    assert asl.problems({"StartAt": "Begin", "States": {"Done": {"Type": "Succeed"}}}) == [
        "definition.StartAt: no state named 'Begin'",
    ]


def test_only_the_allowed_state_types_and_jsonpath_pass():
    assert asl.problems(minimal(Odd={"Type": "Activity", "End": True}))[0].startswith(
        "definition.States.Odd.Type: 'Activity' is not one of"
    )
    jsonata = {"QueryLanguage": "JSONata", **minimal(Done={"Type": "Succeed"})}
    assert asl.problems(jsonata) == ["definition.QueryLanguage: only JSONPath is allowed, not 'JSONata'"]


def test_a_state_needs_exactly_one_of_next_or_end():
    definition = minimal(A={"Type": "Pass"}, B={"Type": "Pass", "Next": "A", "End": True})
    problems = asl.problems(definition)
    assert "definition.States.A: needs exactly one of Next or End: true" in problems
    assert "definition.States.B: needs exactly one of Next or End: true" in problems


def test_terminal_states_take_no_next_and_states_all_comes_last():
    definition = minimal(
        Work={
            "Type": "Task",
            "Resource": "arn:x",
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["Other"]}],
            "Next": "Done",
        },
        Done={"Type": "Succeed", "Next": "Work"},
    )
    assert asl.problems(definition) == [
        "definition.States.Work.Retry[0]: States.ALL must stand alone in the last Retry",
        "definition.States.Done.Next: a Succeed state ends the scope and takes no Next",
    ]


def test_every_lambda_task_retries_what_lambda_and_dynamodb_answer_any_invocation():
    definition = minimal(
        Settle={"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Wait",
                "Retry": [{"ErrorEquals": ["Lambda.ServiceException", "TryAgainError"]}]},
        Wait={"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "TimeoutSeconds": 60,
              "Next": "Undo"},
        Undo={"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True,
              "Retry": [{"ErrorEquals": ["States.ALL"]}]},
    )
    found = asl.problems(definition)
    assert [problem.split(":")[0] for problem in found] == ["definition.States.Settle.Retry",
                                                           "definition.States.Wait.Retry"]
    assert "'Sandbox.Timedout'" in found[0] and "'Lambda.ServiceException'" not in found[0]
    assert all(f"'{error}'" in found[1] for error in asl.TRANSIENT_ERRORS)


def test_branches_of_parallel_and_map_are_checked_too():
    branch = minimal(Step={"Type": "Pass", "Next": "Missing"})
    definition = minimal(
        Fan={"Type": "Parallel", "Branches": [copy.deepcopy(branch)], "Next": "Each"},
        Each={"Type": "Map", "ItemProcessor": copy.deepcopy(branch), "End": True},
    )
    assert asl.problems(definition) == [
        "definition.States.Fan.Branches[0].States.Step.Next: no state named 'Missing'",
        "definition.States.Each.ItemProcessor.States.Step.Next: no state named 'Missing'",
    ]


def test_render_refuses_an_invalid_file(tmp_path):
    broken = tmp_path / "broken.asl.json"
    broken.write_text(json.dumps(minimal(Start={"Type": "Pass", "Next": "Nowhere"})))
    with pytest.raises(asl.InvalidDefinitionError) as raised:
        asl.render(lambda variable: variable, broken)
    assert raised.value.problems == ["definition.States.Start.Next: no state named 'Nowhere'"]


def test_substitution_follows_fn_sub():
    text = '{"a": "arn:${AWS::Partition}:x", "b": "${Fn.Arn}", "c": "${!Literal}"}'
    values = {"AWS::Partition": "aws-cn", "Fn.Arn": "arn:aws-cn:lambda:cn-north-1:1:function:f"}
    assert json.loads(asl.substitute(text, values.__getitem__)) == {
        "a": "arn:aws-cn:x",
        "b": "arn:aws-cn:lambda:cn-north-1:1:function:f",
        "c": "${Literal}",
    }
    assert asl.variables(text) == {"AWS::Partition", "Fn.Arn"}
    assert asl.function_resources(text) == {"Fn"}
