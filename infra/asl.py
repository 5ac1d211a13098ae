"""The order state machine's definition: loading, substituting, validating.

infra/order.asl.json is written with CloudFormation `Fn::Sub` placeholders:
`${AWS::Partition}` for the partition (aws, aws-cn) and `${OrderReserve.Arn}`
for the ARN of a Lambda function of app.py, named by its CloudFormation
resource name (Chalice's CamelCase of the function's name). `render` is the one
substitution both sides use: infra/package.py keeps the placeholders for
CloudFormation to fill, local/aws.py fills them with moto's ARNs.

moto runs whatever it is given (a `Next` naming no state included), so
`problems` checks what AWS would reject, and what this project allows:
JSONPath only, only the state types listed in `ALLOWED_TYPES`, no task
waiting for its token without a timeout, and no Lambda task that does not
retry `TRANSIENT_ERRORS` (every task function is safe to run again).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ORDER_DEFINITION",
    "SEGMENTED_DEFINITION",
    "ALLOWED_TYPES",
    "TRANSIENT_ERRORS",
    "InvalidDefinitionError",
    "substitute",
    "variables",
    "function_resources",
    "waits_for_token",
    "render",
    "problems",
]

ORDER_DEFINITION = Path(__file__).resolve().with_name("order.asl.json")
SEGMENTED_DEFINITION = Path(__file__).resolve().with_name("segmented.asl.json")

ALLOWED_TYPES = frozenset({"Task", "Choice", "Wait", "Parallel", "Map", "Pass", "Succeed", "Fail"})
_TERMINAL_TYPES = frozenset({"Succeed", "Fail"})
_CAN_RETRY_AND_CATCH = frozenset({"Task", "Parallel", "Map"})
_TIMEOUT_FIELDS = frozenset({"TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath"})
_WAIT_FOR_TOKEN = ".waitForTaskToken"
_LAMBDA_INVOKE = ":states:::lambda:invoke"
# What any invocation may meet however correct its function: Lambda refusing or throttling it, the
# function timing out (Lambda.Unknown and Sandbox.Timedout are both reported), DynamoDB throttling
# or contention past the function's own retries (orders.flow raises them by these names).
TRANSIENT_ERRORS = frozenset({
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.Unknown",
    "Sandbox.Timedout",
    "ThrottledError",
    "TryAgainError",
})
_COVERS_EVERY_ERROR = frozenset({"States.ALL", "States.TaskFailed"})
_PSEUDO_PARAMETER = "AWS::"
_FUNCTION_ATTRIBUTE = ".Arn"

# Fn::Sub syntax: ${Name} is replaced, ${!Name} stands for the literal ${Name}.
_PLACEHOLDER = re.compile(r"\$\{(!?)([^}]*)\}")


class InvalidDefinitionError(ValueError):
    def __init__(self, found: list[str]) -> None:
        self.problems = found
        super().__init__("invalid state machine definition:\n  " + "\n  ".join(found))


def substitute(text: str, resolve: Callable[[str], str]) -> str:
    """`text` with every `${Name}` replaced by `resolve(Name)`, as `Fn::Sub` does."""

    def replace(match: re.Match[str]) -> str:
        literal, name = match.groups()
        return "${" + name + "}" if literal else resolve(name)

    return _PLACEHOLDER.sub(replace, text)


def variables(text: str) -> set[str]:
    return {name for literal, name in _PLACEHOLDER.findall(text) if not literal}


def function_resources(text: str) -> set[str]:
    """The CloudFormation resource names of the functions the definition invokes."""
    return {
        name[: -len(_FUNCTION_ATTRIBUTE)]
        for name in variables(text)
        if name.endswith(_FUNCTION_ATTRIBUTE) and not name.startswith(_PSEUDO_PARAMETER)
    }


def waits_for_token(state: dict[str, Any]) -> bool:
    """A Task that parks the execution until someone answers with its task token."""
    resource = state.get("Resource")
    return isinstance(resource, str) and resource.endswith(_WAIT_FOR_TOKEN)


def render(resolve: Callable[[str], str], path: Path = ORDER_DEFINITION) -> str:
    """The definition at `path` with its placeholders resolved, validated, as compact JSON."""
    definition = json.loads(substitute(path.read_text(encoding="utf-8"), resolve))
    found = problems(definition)
    if found:
        raise InvalidDefinitionError(found)
    return json.dumps(definition, ensure_ascii=False, separators=(",", ":"))


# --- Validation ------------------------------------------------------------------

def problems(definition: Any) -> list[str]:
    """What is wrong with a definition (empty when nothing is)."""
    if not isinstance(definition, dict):
        return ["the definition is not a JSON object"]
    found = list(_query_language(definition, "definition"))
    found.extend(_scope(definition, "definition"))
    return found


def _query_language(node: dict[str, Any], where: str) -> Iterator[str]:
    language = node.get("QueryLanguage", "JSONPath")
    if language != "JSONPath":
        yield f"{where}.QueryLanguage: only JSONPath is allowed, not {language!r}"


def _scope(scope: dict[str, Any], where: str) -> Iterator[str]:
    """A set of states with its StartAt: the machine, a Parallel branch, a Map's processor."""
    states = scope.get("States")
    start = scope.get("StartAt")
    if not isinstance(states, dict) or not states:
        yield f"{where}.States: must be a non-empty object"
        return
    if start not in states:
        yield f"{where}.StartAt: no state named {start!r}"
    for name, state in states.items():
        yield from _state(name, state, states, f"{where}.States.{name}")
    if start in states:
        unreachable = sorted(set(states) - _reachable(start, states))
        for name in unreachable:
            yield f"{where}.States.{name}: not reachable from {start!r}"


def _state(name: str, state: Any, states: dict[str, Any], where: str) -> Iterator[str]:
    if not isinstance(state, dict):
        yield f"{where}: must be an object"
        return
    kind = state.get("Type")
    if kind not in ALLOWED_TYPES:
        yield f"{where}.Type: {kind!r} is not one of {sorted(ALLOWED_TYPES)}"
        return
    yield from _query_language(state, where)

    def target(field: str, value: Any) -> Iterator[str]:
        if not isinstance(value, str) or value not in states:
            yield f"{where}.{field}: no state named {value!r}"

    if kind in _TERMINAL_TYPES:
        for field in ("Next", "End"):
            if field in state:
                yield f"{where}.{field}: a {kind} state ends the scope and takes no {field}"
    elif kind == "Choice":
        for field in ("Next", "End"):
            if field in state:
                yield f"{where}.{field}: a Choice state moves by its Choices and Default only"
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            yield f"{where}.Choices: must be a non-empty list"
        else:
            for index, rule in enumerate(choices):
                yield from target(f"Choices[{index}].Next", rule.get("Next") if isinstance(rule, dict) else None)
        if "Default" in state:
            yield from target("Default", state["Default"])
    else:
        has_next, ends = "Next" in state, state.get("End") is True
        if has_next == ends:
            yield f"{where}: needs exactly one of Next or End: true"
        if has_next:
            yield from target("Next", state["Next"])

    for field in ("Retry", "Catch"):
        if field not in state:
            continue
        if kind not in _CAN_RETRY_AND_CATCH:
            yield f"{where}.{field}: only Task, Parallel and Map states may have {field}"
            continue
        yield from _handlers(state[field], field, where)
        if field == "Catch" and isinstance(state[field], list):
            for index, catcher in enumerate(state[field]):
                yield from target(f"Catch[{index}].Next", catcher.get("Next") if isinstance(catcher, dict) else None)

    if kind == "Task" and not isinstance(state.get("Resource"), str):
        yield f"{where}.Resource: a Task needs a Resource"
    if kind == "Task" and waits_for_token(state) and not _TIMEOUT_FIELDS & set(state):
        # Without one, a token nobody answers holds the execution (and the order) for a year.
        yield f"{where}: a task waiting for its token needs TimeoutSeconds or HeartbeatSeconds"
    if kind == "Task" and _LAMBDA_INVOKE in str(state.get("Resource")):
        retried = {error for retrier in state.get("Retry") or [] if isinstance(retrier, dict)
                   for error in retrier.get("ErrorEquals") or []}
        missing = set() if retried & _COVERS_EVERY_ERROR else TRANSIENT_ERRORS - retried
        if missing:
            yield f"{where}.Retry: a Lambda task must retry {sorted(missing)}"
    if kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            yield f"{where}.Branches: must be a non-empty list"
        else:
            for index, branch in enumerate(branches):
                yield from _nested(branch, f"{where}.Branches[{index}]")
    if kind == "Map":
        processor_field = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
        yield from _nested(state.get(processor_field), f"{where}.{processor_field}")


def _nested(scope: Any, where: str) -> Iterator[str]:
    if not isinstance(scope, dict):
        yield f"{where}: must be an object with StartAt and States"
        return
    yield from _query_language(scope, where)
    yield from _scope(scope, where)


def _handlers(handlers: Any, field: str, where: str) -> Iterator[str]:
    if not isinstance(handlers, list) or not handlers:
        yield f"{where}.{field}: must be a non-empty list"
        return
    for index, handler in enumerate(handlers):
        errors = handler.get("ErrorEquals") if isinstance(handler, dict) else None
        if not isinstance(errors, list) or not errors:
            yield f"{where}.{field}[{index}].ErrorEquals: must be a non-empty list"
        elif "States.ALL" in errors and (len(errors) > 1 or index != len(handlers) - 1):
            yield f"{where}.{field}[{index}]: States.ALL must stand alone in the last {field}"


def _reachable(start: str, states: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        name = pending.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        if not isinstance(state, dict):
            continue
        pending.extend(_successors(state))
    return seen


def _successors(state: dict[str, Any]) -> Iterator[str]:
    if isinstance(state.get("Next"), str):
        yield state["Next"]
    if isinstance(state.get("Default"), str):
        yield state["Default"]
    for field in ("Choices", "Catch"):
        for rule in state.get(field) or []:
            if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
                yield rule["Next"]
