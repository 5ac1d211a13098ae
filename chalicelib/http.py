"""The HTTP edge: routes declared with their roles, bodies validated, errors shaped.

    api = Api(app)

    @api.post("/points/checkin", roles=[MEMBER], idempotent=True)
    def checkin(call: Call) -> dict: ...

A view takes a `Call` and returns the JSON body (a dict), or None for 204.
Every `SiyuError` becomes `{"code", "message"}` with its status; anything else
is logged and answered 500 without details.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib import auth
from chalicelib.errors import ForbiddenError, InvalidRequestError, SiyuError, UnauthenticatedError

__all__ = ["Api", "Call", "encode_cursor", "decode_cursor", "page_limit"]

T = TypeVar("T")
View = Callable[["Call"], Any]

DEFAULT_PAGE, MAX_PAGE = 20, 100
# Bodies are read as JSON whatever the header says (`curl -d` sends form encoding).
ACCEPTED_CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain"]


class Call:
    """What a view needs from the request: caller, parameters, validated body."""

    def __init__(self, request: Request, params: Mapping[str, str], caller: auth.Principal | None) -> None:
        self.request = request
        self.params = dict(params)
        self._caller = caller

    @property
    def caller(self) -> auth.Principal:
        if self._caller is None:
            raise UnauthenticatedError()
        return self._caller

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.query_params or {})

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    @functools.cached_property
    def raw_body(self) -> bytes:
        return self.request.raw_body or b""

    def json(self) -> Any:
        """The body as JSON; an empty body reads as `{}`."""
        if not self.raw_body.strip():
            return {}
        try:
            return json.loads(self.raw_body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequestError("body", "is not valid JSON") from exc

    def body(self, model: type[T]) -> T:
        """The body validated by a pydantic model, strictly (no "12" for 12)."""
        from pydantic import ValidationError

        raw = self.raw_body if self.raw_body.strip() else b"{}"
        try:
            return model.model_validate_json(raw, strict=True)  # type: ignore[attr-defined]
        except ValidationError as exc:
            raise _invalid(exc, default_field="body") from exc

    def query_as(self, model: type[T]) -> T:
        """Query parameters validated by a pydantic model (strings coerced)."""
        from pydantic import ValidationError

        try:
            return model.model_validate(self.query)  # type: ignore[attr-defined]
        except ValidationError as exc:
            raise _invalid(exc, default_field="query") from exc

    def limit(self) -> int:
        return page_limit(self.query.get("limit"))

    def cursor(self) -> dict[str, Any] | None:
        return decode_cursor(self.query.get("cursor"))


def _invalid(exc: Any, default_field: str) -> InvalidRequestError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or default_field
    if first.get("type") == "json_invalid":
        return InvalidRequestError("body", "is not valid JSON")
    return InvalidRequestError(field, first.get("msg", "is invalid").lower())


def page_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequestError("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


def encode_cursor(last_key: Mapping[str, Any] | None) -> str | None:
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("cursor", "is not a cursor this API gave out") from exc
    if not isinstance(value, dict):
        raise InvalidRequestError("cursor", "is not a cursor this API gave out")
    return value


def _json_response(status: int, body: Any) -> Response:
    if body is None:
        return Response(body="", status_code=204)
    return Response(
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


class Api:
    """Declares routes on a Chalice app with roles, idempotency and error shaping."""

    def __init__(self, app: Chalice) -> None:
        self.app = app

    def route(
        self,
        path: str,
        method: str,
        *,
        roles: Iterable[str] | None = None,
        idempotent: bool = False,
        status: int = 200,
    ) -> Callable[[View], View]:
        required = frozenset(roles or ())

        def decorate(view: View) -> View:
            def handle(**params: str) -> Response:
                return self._dispatch(view, params, required, idempotent, status)

            handle.__name__ = view.__name__
            handle.__doc__ = view.__doc__
            self.app.route(path, methods=[method], content_types=ACCEPTED_CONTENT_TYPES)(handle)
            return view

        return decorate

    def get(self, path: str, **options: Any) -> Callable[[View], View]:
        return self.route(path, "GET", **options)

    def post(self, path: str, **options: Any) -> Callable[[View], View]:
        return self.route(path, "POST", **options)

    def put(self, path: str, **options: Any) -> Callable[[View], View]:
        return self.route(path, "PUT", **options)

    def delete(self, path: str, **options: Any) -> Callable[[View], View]:
        return self.route(path, "DELETE", **options)

    def _dispatch(
        self, view: View, params: Mapping[str, str], roles: frozenset[str], idempotent: bool, status: int
    ) -> Response:
        from chalicelib.observability import logger, traced

        request = self.app.current_request
        logger().set_correlation_id((request.context or {}).get("requestId"))
        started = time.perf_counter()
        with traced(view.__name__):
            response = self._respond(view, request, params, roles, idempotent, status)
        logger().info(
            "request",
            extra={
                "method": request.method,
                "route": view.__name__,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return response

    def _respond(
        self, view: View, request: Request, params: Mapping[str, str], roles: frozenset[str], idempotent: bool, status: int
    ) -> Response:
        from chalicelib.observability import logger

        try:
            caller = _authorize(request, roles)
            call = Call(request, params, caller)
            key = request.headers.get("idempotency-key") if idempotent else None
            if key and caller is not None:
                from chalicelib import idempotency

                answer = idempotency.run_once(
                    scope=f"{caller.member_id}#{request.method} {request.path}#{json.dumps(call.params, sort_keys=True)}",
                    key=key,
                    payload=call.json(),
                    action=lambda: view(call),
                    lambda_context=self.app.lambda_context,
                )
            else:
                answer = view(call)
            return _json_response(status, answer)
        except SiyuError as error:
            return _json_response(error.status, error.body())
        except Exception:
            logger().exception("unhandled error", extra={"path": request.path, "method": request.method})
            return _json_response(500, {"code": "INTERNAL_ERROR", "message": "internal error"})


def _authorize(request: Request, roles: frozenset[str]) -> auth.Principal | None:
    header = request.headers.get("authorization")
    if not roles:
        # Public routes still know a caller who sent a valid token.
        try:
            return auth.from_header(header) if header else None
        except UnauthenticatedError:
            return None
    caller = auth.from_header(header)
    if not roles & caller.roles:
        raise ForbiddenError()
    return caller
