"""The HTTP edge: a table of routes with their roles and models; every request parsed once, every answer shaped.

    api = Api(app)

    @api.post("/appointments", roles=[MEMBER], body=schemas.BookingRequest,
              response=schemas.Appointment, idempotent=True)
    def book(call: Call) -> dict: ...

Before the view runs, the edge authorises the caller (the token's roles, then
the app's `admit`: whether the token still speaks for someone), reads the body once as
JSON (refused with 400 if it is not, whatever the route), validates it and the
query with the route's models, and for a list reads `limit` and unseals
`cursor`. The view returns a dict (or None for 204); the edge seals a list's
`nextCursor` and passes the answer through the route's response model. A route
that also answers in another format (`also=["text/csv"]`) may return a
`Rendered` body of that media type instead, passed through as it is. Every
`SiyuError` becomes `{"code", "message"}` with its status; DynamoDB throttling
or a transaction conflict that outlasted the retries is `TRY_AGAIN` (503 with
`Retry-After`, 409); anything else is logged and answered 500 without details.
Unknown paths and methods get the same shape (404, 405) from fallback routes. Models are named lazily (`LazyName`), so
importing the app imports none of them.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib import auth, cursors
from chalicelib.errors import (
    ForbiddenError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    SiyuError,
    ThrottledError,
    UnauthenticatedError,
    UnsupportedMediaTypeError,
)

__all__ = ["Admit", "Api", "Call", "Rendered", "Route", "Webhook", "WebhookCall", "resolve", "DEFAULT_PAGE", "MAX_PAGE", "MAX_PATH_PARAMETER", "GREEDY_PATH"]

View = Callable[["Call"], Any]
# What the edge asks of a verified caller before an authenticated route runs; it raises to refuse.
Admit = Callable[[auth.Principal, frozenset[str]], None]

DEFAULT_PAGE, MAX_PAGE = 20, 100
MAX_PATH_PARAMETER = 256
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# API Gateway's catch-all resource: every path no route declares.
GREEDY_PATH = "/{proxy+}"
# Bodies are read as JSON whatever these say (`curl -d` sends form encoding); other media types are refused.
JSON_MEDIA_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded", "text/plain"})
_ANY_MEDIA_TYPE = ["*/*"]
_LIMIT = re.compile(r"[0-9]{1,3}")
_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def resolve(model: Any) -> Any:
    """A model named lazily (`LazyName`) or directly."""
    return _resolved(model) if model is not None else None


@functools.cache
def _resolved(model: Any) -> Any:
    return model.resolve() if hasattr(model, "resolve") else model


@dataclass(frozen=True)
class Route:
    """One operation of the API, as /openapi.json describes it."""

    method: str
    path: str
    view: View
    roles: frozenset[str]
    body: Any = None
    query: Any = None
    response: Any = None
    status: int = 200
    idempotent: bool = False
    # Media types the answer may also come in, besides JSON (the view returns a `Rendered` one).
    also: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.view.__name__

    @property
    def summary(self) -> str | None:
        doc = (self.view.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else None

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def paged(self) -> bool:
        from chalicelib.validation import Page

        model = resolve(self.response)
        return isinstance(model, type) and issubclass(model, Page)


@dataclass(frozen=True)
class Rendered:
    """An answer already in one of the route's other formats (`also`), such as CSV for a spreadsheet."""

    media_type: str
    body: str
    charset: str = "utf-8"

    @property
    def content_type(self) -> str:
        return f"{self.media_type}; charset={self.charset}"


@dataclass(frozen=True)
class WebhookCall:
    """What a webhook receives: the sender's bytes and headers as sent, no token, nothing parsed."""

    body: bytes
    headers: Mapping[str, str]
    params: Mapping[str, str]
    query: Mapping[str, str]


# A webhook view answers in its sender's format: (status, content type, body).
WebhookView = Callable[[WebhookCall], tuple[int, str, bytes | str]]


@dataclass(frozen=True)
class Webhook:
    method: str
    path: str
    view: WebhookView

    @property
    def name(self) -> str:
        return self.view.__name__


class Call:
    """What a view needs from the request: caller, path parameters, validated body and query, the page asked for."""

    def __init__(
        self,
        request: Request,
        params: Mapping[str, str],
        caller: auth.Principal | None,
        *,
        body: Any = None,
        query: Any = None,
        limit: int = DEFAULT_PAGE,
        cursor: dict[str, Any] | None = None,
    ) -> None:
        self.request = request
        self.params = dict(params)
        self.principal = caller
        self.body = body
        self.query = query
        self.limit = limit
        self.cursor = cursor

    @property
    def caller(self) -> auth.Principal:
        """The authenticated caller (a public route's may be absent: `principal` is then None)."""
        if self.principal is None:
            raise UnauthenticatedError()
        return self.principal

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)


# --- Reading a request ----------------------------------------------------------------------

def _raw_body(request: Request) -> bytes:
    try:
        raw = request.raw_body or b""
    except (UnicodeError, ValueError) as exc:  # a body API Gateway passed as text that is not UTF-8
        raise InvalidRequestError("body", "is not valid JSON") from exc
    if raw.strip():
        media_type = (request.headers.get("content-type") or "application/json").partition(";")[0].strip().lower()
        if media_type not in JSON_MEDIA_TYPES and not media_type.endswith("+json"):
            raise UnsupportedMediaTypeError()
    return raw


def _path_params(params: Mapping[str, str]) -> dict[str, str]:
    """Ids as a caller may write them; what no id can be is refused before a service looks it up."""
    for name, value in params.items():
        if not 0 < len(value) <= MAX_PATH_PARAMETER or not value.isprintable():
            raise InvalidRequestError(name, f"must be 1 to {MAX_PATH_PARAMETER} printable characters")
    return dict(params)


def _sentence(message: str) -> str:
    """A pydantic message as the tail of ours: what it quotes keeps its case."""
    message = message.removeprefix("Value error, ")
    return message[:1].lower() + message[1:] if message[1:2].islower() else message


def _invalid(exc: Any, default_field: str) -> InvalidRequestError:
    first = exc.errors(include_url=False)[0]
    if first.get("type") == "json_invalid":
        return InvalidRequestError("body", "is not valid JSON")
    location = [str(part) for part in first.get("loc", ())]
    if not location:
        return InvalidRequestError(default_field, "must be a JSON object")
    return InvalidRequestError(".".join(location), _sentence(first.get("msg", "is invalid")))


def _body(route: Route, raw: bytes) -> Any:
    """The body validated by the route's model (strictly: no "12" for 12), or checked to be JSON."""
    from pydantic import ValidationError

    model = resolve(route.body)
    if model is None:
        if raw.strip():
            from pydantic_core import from_json

            try:
                from_json(raw)
            except ValueError as exc:
                raise InvalidRequestError("body", "is not valid JSON") from exc
        return None
    try:
        return model.model_validate_json(raw if raw.strip() else b"{}", strict=True)
    except ValidationError as exc:
        raise _invalid(exc, "body") from exc


def _query(route: Route, query: Mapping[str, str]) -> Any:
    from pydantic import ValidationError

    model = resolve(route.query)
    if model is None:
        return None
    try:
        return model.model_validate(query)
    except ValidationError as exc:
        raise _invalid(exc, "query") from exc


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequestError("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


def _binding(route: Route, caller: auth.Principal | None, params: Mapping[str, str], query: Any) -> str:
    """What a list's cursor is bound to: whose list (a public one is everyone's), which route, which filters."""
    owner = caller.member_id if route.roles and caller is not None else ""
    filters = query.model_dump(mode="json", by_alias=True, exclude_none=True) if query is not None else {}
    return json.dumps([owner, route.method, route.path, dict(params), filters], sort_keys=True, ensure_ascii=True)


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


# --- Answering ----------------------------------------------------------------------------------

def _json_response(status: int, body: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body=body, status_code=status, headers={**_JSON_HEADERS, **(headers or {})})


def _error_response(error: SiyuError, method: str) -> Response:
    headers = {"Allow": ", ".join(error.allowed)} if isinstance(error, MethodNotAllowedError) else {}
    if isinstance(error, ThrottledError):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if method == "HEAD":
        return Response(body="", status_code=error.status, headers=headers)
    body = json.dumps(error.body(), ensure_ascii=False, separators=(",", ":"))
    return _json_response(error.status, body, headers)


def _rendered_response(route: Route, answer: Rendered) -> Response:
    if answer.media_type not in route.also:
        raise TypeError(f"{route.method} {route.path} does not declare answers of {answer.media_type}")
    return Response(body=answer.body, status_code=route.status, headers={"Content-Type": answer.content_type})


def _serialise(route: Route, answer: Any) -> str:
    """The answer through the route's model: what the schema says, and only that."""
    model = resolve(route.response)
    return model.model_validate(answer).model_dump_json(by_alias=True, exclude_unset=True)


class Api:
    """Declares routes on a Chalice app with roles, models, idempotency and error shaping."""

    def __init__(self, app: Chalice, *, admit: Admit | None = None) -> None:
        self.app = app
        self._admit = admit
        self._routes: list[Route] = []
        self._webhooks: list[Webhook] = []
        self._methods: dict[str, set[str]] = {}
        for path in ("/", GREEDY_PATH):
            for method in METHODS:
                self._fallback(path, method, self._not_found)
        for entry in self.app.routes[GREEDY_PATH].values():
            # Chalice reads `{proxy+}` as an argument named "proxy+"; API Gateway passes it as "proxy".
            entry.view_args = ["proxy"]
        self.app.register_middleware(self._in_shape, "http")

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    @property
    def webhooks(self) -> tuple[Webhook, ...]:
        return tuple(self._webhooks)

    def webhook(self, path: str, method: str = "POST") -> Callable[[WebhookView], WebhookView]:
        """A route for a partner's calls: raw bytes in, the sender's own answer format out.

        An exception the view lets out is logged and answered 500 with an empty
        body, which every sender treats as "deliver again".
        """

        def decorate(view: WebhookView) -> WebhookView:
            hook = Webhook(method, path, view)

            def handle(**params: str) -> Response:
                request = self.app.current_request
                return self._log(request, hook.name, lambda: self._deliver(hook, request, params))

            handle.__name__ = view.__name__
            self._claim(path, method)
            self.app.route(path, methods=[method], content_types=_ANY_MEDIA_TYPE)(handle)
            self._fill_methods(path)
            self._webhooks.append(hook)
            return view

        return decorate

    def _deliver(self, hook: Webhook, request: Request, params: Mapping[str, str]) -> Response:
        from chalicelib.observability import logger

        try:
            call = WebhookCall(
                body=request.raw_body or b"",
                headers={name.lower(): value for name, value in (request.headers or {}).items()},
                params=dict(params),
                query=dict(request.query_params or {}),
            )
            status, content_type, body = hook.view(call)
        except Exception:
            logger().exception("unhandled webhook error", extra={"path": request.path})
            return Response(body="", status_code=500)
        return Response(body=body, status_code=status, headers={"Content-Type": content_type} if body else {})

    def route(
        self,
        path: str,
        method: str,
        *,
        roles: Iterable[str] | None = None,
        body: Any = None,
        query: Any = None,
        response: Any = None,
        status: int = 200,
        idempotent: bool = False,
        also: Iterable[str] = (),
    ) -> Callable[[View], View]:
        if response is None and status != 204:
            raise ValueError(f"{method} {path}: name the model of its answer (response=...)")

        def decorate(view: View) -> View:
            route = Route(method, path, view, frozenset(roles or ()), body, query, response, status, idempotent,
                          tuple(also))

            def handle(**params: str) -> Response:
                return self._dispatch(route, params)

            handle.__name__ = view.__name__
            handle.__doc__ = view.__doc__
            self._declare(route, handle)
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

    # --- The route table -------------------------------------------------------------------------

    def _declare(self, route: Route, handle: Callable[..., Response]) -> None:
        self._claim(route.path, route.method)
        self.app.route(route.path, methods=[route.method], content_types=_ANY_MEDIA_TYPE)(handle)
        self._fill_methods(route.path)
        self._routes.append(route)

    def _claim(self, path: str, method: str) -> None:
        declared = self._methods.setdefault(path, set())
        if method in declared:
            raise ValueError(f"{method} {path} is declared twice")
        declared.add(method)
        # The fallbacks stand for the methods nobody declared; this one is declared now.
        self.app.routes[path].pop(method, None)

    def _fill_methods(self, path: str) -> None:
        for method in METHODS:
            if method not in self.app.routes[path]:
                self._fallback(path, method, self._method_not_allowed)

    def _fallback(self, path: str, method: str, answer: Callable[[str, str], SiyuError]) -> None:
        def fallback(**_: str) -> Response:
            request = self.app.current_request
            return self._log(request, answer.__name__.strip("_"), lambda: _error_response(answer(path, method), method))

        fallback.__name__ = answer.__name__.strip("_")
        self.app.route(path, methods=[method], content_types=_ANY_MEDIA_TYPE)(fallback)

    def _not_found(self, path: str, method: str) -> SiyuError:
        return NotFoundError("no such path")

    def _method_not_allowed(self, path: str, method: str) -> SiyuError:
        return MethodNotAllowedError(sorted(self._methods.get(path, ())))

    def _in_shape(self, request: Request, get_response: Callable[[Request], Response]) -> Response:
        """What Chalice answers by itself (a method no route takes, a failure before a view) in the API's shape."""
        from chalicelib.observability import logger

        try:
            response = get_response(request)
        except Exception:
            logger().exception("unhandled error", extra={"path": request.path, "method": request.method})
            return _error_response(SiyuError(), request.method)
        if not (isinstance(response.body, dict) and "Code" in response.body):
            return response
        path = (request.context or {}).get("resourcePath")
        error: SiyuError
        if response.status_code == 405 and path in self._methods:
            error = MethodNotAllowedError(sorted(self._methods[path]))
        elif response.status_code == 405:
            error = NotFoundError("no such path")
        elif response.status_code == 415:
            error = UnsupportedMediaTypeError()
        else:
            error = SiyuError()
        return _error_response(error, request.method)

    # --- A request ------------------------------------------------------------------------------

    def _log(self, request: Request, name: str, respond: Callable[[], Response]) -> Response:
        from chalicelib.observability import logger

        logger().set_correlation_id((request.context or {}).get("requestId"))
        started = time.perf_counter()
        response = respond()
        logger().info(
            "request",
            extra={
                "method": request.method,
                "route": name,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return response

    def _dispatch(self, route: Route, params: Mapping[str, str]) -> Response:
        from chalicelib.observability import traced

        request = self.app.current_request

        def respond() -> Response:
            with traced(route.name):
                return self._respond(route, request, params)

        return self._log(request, route.name, respond)

    def _respond(self, route: Route, request: Request, params: Mapping[str, str]) -> Response:
        from chalicelib.observability import logger

        try:
            call, binding = self._call(route, request, params)
            key = request.headers.get("idempotency-key") if route.idempotent else None
            if key and call.principal is not None:
                from chalicelib import idempotency

                payload = call.body.model_dump(mode="json") if call.body is not None else None
                answer = idempotency.run_once(
                    scope=f"{call.caller.member_id}#{request.method} {request.path}#{json.dumps(call.params, sort_keys=True)}",
                    key=key,
                    payload=payload,
                    action=lambda: route.view(call),
                    lambda_context=self.app.lambda_context,
                )
            else:
                answer = route.view(call)
            if answer is None or route.status == 204:
                return Response(body="", status_code=204)
            if isinstance(answer, Rendered):
                return _rendered_response(route, answer)
            if binding is not None:
                answer = {**answer, "nextCursor": cursors.seal(answer.get("nextCursor"), binding)}
            return _json_response(route.status, _serialise(route, answer))
        except SiyuError as error:
            return _error_response(error, request.method)
        except Exception as error:
            from chalicelib import transact

            busy = transact.busy_error(error)
            if busy is not None:
                logger().warning("busy past the retries", extra={"path": request.path, "method": request.method})
                return _error_response(busy, request.method)
            logger().exception("unhandled error", extra={"path": request.path, "method": request.method})
            return _json_response(500, '{"code":"INTERNAL_ERROR","message":"internal error"}')

    def _call(self, route: Route, request: Request, params: Mapping[str, str]) -> tuple[Call, str | None]:
        """The view's `Call`, and for a list the binding its cursors are sealed to."""
        caller = _authorize(request, route.roles)
        if route.roles and caller is not None and self._admit is not None:
            self._admit(caller, route.roles)
        params = _path_params(params)
        body = _body(route, _raw_body(request))
        query_params = dict(request.query_params or {})
        query = _query(route, query_params)
        if not route.paged:
            return Call(request, params, caller, body=body, query=query), None
        binding = _binding(route, caller, params, query)
        limit = _limit(query_params.get("limit"))
        cursor = cursors.unseal(query_params.get("cursor"), binding)
        return Call(request, params, caller, body=body, query=query, limit=limit, cursor=cursor), binding
