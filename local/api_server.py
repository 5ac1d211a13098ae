"""The API on loopback: chalice local's gateway and handler, served by reused threads.

Clients open a connection per request (as the mini-program does), so the server
keeps idle worker threads instead of starting one per connection, and answers
each request with a single send on a socket without Nagle's delay.
"""

from __future__ import annotations

import functools
import queue
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LambdaEventConverter,
    LocalChalice,
    LocalDevServer,
    LocalGateway,
    MatchResult,
    RouteMatcher,
)

from chalicelib.http import GREEDY_PATH

__all__ = ["create_server"]


class RequestHandler(ChaliceRequestHandler):
    """chalice local's handler with one gateway for all connections."""

    # Status line, headers and body are buffered and flushed once per request.
    wbufsize = -1
    disable_nagle_algorithm = True

    def __init__(
        self,
        request: socket.socket,
        client_address: tuple[str, int],
        server: Any,
        app_object: Chalice,
        config: Config,
        gateway: LocalGateway,
    ) -> None:
        self.local_gateway = gateway
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def __getattr__(self, name: str) -> Any:
        # API Gateway passes on every method, so the app answers those http.server has no handler for (TRACE, ...).
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)

    def handle_expect_100(self) -> bool:
        # The client waits for this interim answer before sending the body: send it now.
        answered = super().handle_expect_100()
        self.wfile.flush()
        return answered


class GreedyRouteMatcher(RouteMatcher):
    """chalice local's matcher, with API Gateway's `/{proxy+}` for the paths no other route matches."""

    def __init__(self, route_urls: list[str]) -> None:
        super().__init__([url for url in route_urls if url != GREEDY_PATH])
        self.greedy = GREEDY_PATH in route_urls

    def match_route(self, url: str) -> MatchResult:
        try:
            return super().match_route(url)
        except ValueError:
            if not self.greedy:
                raise
            parsed = urlparse(url)
            return MatchResult(GREEDY_PATH, {"proxy": parsed.path.strip("/")}, parse_qs(parsed.query, keep_blank_values=True))


class PooledHTTPServer(ThreadingHTTPServer):
    """Serves each connection on an idle worker thread; starts a thread only when all are busy."""

    # Beyond socketserver's backlog of 5 a burst's connections are dropped (retried a second later) or reset.
    request_queue_size = 128

    def __init__(self, server_address: tuple[str, int], handler: Any) -> None:
        super().__init__(server_address, handler)
        self._waiting: queue.SimpleQueue[tuple[socket.socket, Any]] = queue.SimpleQueue()
        self._idle = 0
        self._idle_lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        with self._idle_lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1
        if reuse:
            self._waiting.put((request, client_address))
        else:
            threading.Thread(target=self._work, args=(request, client_address), name="api-worker", daemon=True).start()

    def _work(self, request: socket.socket, client_address: Any) -> None:
        while True:
            self.process_request_thread(request, client_address)
            with self._idle_lock:
                self._idle += 1
            request, client_address = self._waiting.get()


def create_server(app: Chalice, config: Config, host: str, port: int) -> LocalDevServer:
    """What chalice's `create_local_server` builds, with the handler and server above."""
    if not isinstance(app, LocalChalice):
        # chalice local keeps `app.current_request` per thread.
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    gateway = LocalGateway(app, config)
    gateway.event_converter = LambdaEventConverter(GreedyRouteMatcher(list(app.routes)), app.api.binary_types)
    handler = functools.partial(RequestHandler, gateway=gateway)
    return LocalDevServer(app, config, host, port, handler_cls=handler, server_cls=PooledHTTPServer)
