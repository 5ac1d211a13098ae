"""OpenAPI 3.1 of the API, generated from the route table and its models; never written by hand.

`GET /openapi.json` serves `document(api.routes)`: every route with its roles
(bearer security), path and query parameters, `limit` and `cursor` on lists,
the `Idempotency-Key` header where a repeat must change nothing, its body and
answer schemas, and the `{code, message}` refusals it may answer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from pydantic import ConfigDict
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from chalicelib.http import DEFAULT_PAGE, MAX_PAGE, MAX_PATH_PARAMETER, Route, resolve
from chalicelib.idempotency import MAX_KEY_LENGTH
from chalicelib.validation import Error, ResponseModel

__all__ = ["Document", "document", "TITLE", "VERSION"]

TITLE = "siyu"
VERSION = "1"
_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: ("InvalidRequest", "Bad JSON, or a parameter or field of the wrong type or range, named in `message`."),
    401: ("Unauthenticated", "No bearer token, or one that is not valid (anymore); a login code WeChat refused."),
    403: ("Forbidden", "A valid token without the role, or for another store."),
    404: ("NotFound", "No such resource, or one that is not the caller's."),
    409: ("Conflict", "A business rule said no; `code` says which."),
    422: ("IdempotencyKeyReused", "This `Idempotency-Key` came with another body."),
}


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON Schema, less the titles it makes up for fields ("Couponid")."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


class Document(ResponseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


def document(routes: Iterable[Route]) -> dict[str, Any]:
    return _document(tuple(routes))


@functools.cache
def _document(routes: tuple[Route, ...]) -> dict[str, Any]:
    bodies = {resolve(route.body) for route in routes if route.body is not None}
    answers = {resolve(route.response) for route in routes if route.response is not None} | {Error}
    refs, definitions = models_json_schema(
        [(model, "validation") for model in sorted(bodies, key=_name)]
        + [(model, "serialization") for model in sorted(answers, key=_name)],
        ref_template=_REF,
        schema_generator=_Schema,
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "The HTTP contract of siyu, generated from its routes and models (see docs/api.md).",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "responses": {
                name: {"description": text, "content": _json({"$ref": _REF.format(model="Error")})}
                for name, text in _ERRORS.values()
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "from POST /auth/login"}},
        },
    }


def _name(model: Any) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.name}
    if route.summary:
        operation["summary"] = route.summary
    roles = sorted(route.roles)
    operation["description"] = f"Roles: {', '.join(roles)}." if roles else "Public."
    operation["security"] = [{"bearer": []}] if roles else []
    parameters = _parameters(route)
    if parameters:
        operation["parameters"] = parameters
    body = resolve(route.body)
    if body is not None:
        operation["requestBody"] = {
            "required": any(field.is_required() for field in body.model_fields.values()),
            "content": _json(refs[(body, "validation")]),
        }
    operation["responses"] = _responses(route, refs)
    return operation


def _parameters(route: Route) -> list[dict[str, Any]]:
    parameters = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_PATH_PARAMETER}}
        for name in route.path_params
    ]
    query = resolve(route.query)
    if query is not None:
        schema = query.model_json_schema(by_alias=True, ref_template=_REF, schema_generator=_Schema)
        required = set(schema.get("required", ()))
        for name, field in schema.get("properties", {}).items():
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in field:
                parameter["description"] = field["description"]
            parameter["schema"] = _present(field)
            parameters.append(parameter)
    if route.paged:
        parameters += [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": f"items per page, {DEFAULT_PAGE} when absent",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "the `nextCursor` of the page before, as this caller was given it for this list",
                "schema": {"type": "string"},
            },
        ]
    if route.idempotent:
        parameters.append({
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "the same key with the same body answers the first answer again and changes nothing",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
        })
    return parameters


def _present(field: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: absent stands for null, so null is not one of its values."""
    schema = {key: value for key, value in field.items() if key not in ("description", "default")}
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    if field.get("default") is not None:
        schema["default"] = field["default"]
    return schema


def _responses(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    answer = resolve(route.response)
    responses: dict[str, Any]
    if route.status == 204:
        responses = {"204": {"description": "done; no content"}}
    else:
        content = _json(refs[(answer, "serialization")])
        content.update({media_type: {"schema": {"type": "string"}} for media_type in route.also})
        responses = {str(route.status): {"description": "OK", "content": content}}
    statuses = [400, 401, 404, 409]
    if route.roles:
        statuses.append(403)
    if route.idempotent:
        statuses.append(422)
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    return responses
