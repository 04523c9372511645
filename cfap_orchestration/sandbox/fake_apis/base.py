"""What every fake platform API shares: routing, auth, fault injection, and two ways to serve.

A fake API is a function from `httpx.Request` to `httpx.Response`. The demo serves
it in-process through `httpx.MockTransport`; tests serve the same object on a real
127.0.0.1 socket with :func:`serve`. Faults are queued with :meth:`FakeApi.inject`
and consumed by matching requests, so a test can say "the second page gets a 429".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

from cfap_orchestration.sandbox.world import SandboxWorld

FaultKind = Literal[
    "rate_limit",  # 429 with Retry-After (Meta: a body-coded throttle, see `code`)
    "server_error",  # 500/503
    "timeout",  # no answer before the client's read timeout
    "truncated",  # a 200 whose JSON body is cut short
    "expired_token",  # the platform's own expired/invalid-token error
    "renamed_field",  # a field the connector needs comes back under another name
    "bad_request",  # the platform's invalid-parameter error
]


@dataclass
class Fault:
    """One injected failure. It fires on the matching requests after the first `skip`."""

    kind: FaultKind
    times: int = 1
    path_contains: str = ""
    skip: int = 0
    retry_after: float = 0.2
    code: int | None = None  # platform-specific error code (Meta throttles: 4, 17, 613, 80000)
    status: int | None = None  # HTTP status for server_error (default 500)
    delay: float = 2.0  # seconds a socket server stalls for "timeout"


class SimulatedTimeout(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"simulated stall of {seconds}s")


def json_response(
    status: int, body: Any, headers: dict[str, str] | None = None, content_type: str | None = None
) -> httpx.Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    all_headers = {"content-type": content_type or "application/json"}
    all_headers.update(headers or {})
    return httpx.Response(status, content=content, headers=all_headers)


def rename_key(body: Any, old: str, new: str) -> Any:
    """Rename `old` to `new` wherever it appears as a key in a JSON document."""
    if isinstance(body, dict):
        return {(new if k == old else k): rename_key(v, old, new) for k, v in body.items()}
    if isinstance(body, list):
        return [rename_key(v, old, new) for v in body]
    return body


class FakeApi:
    """Base class. Subclasses implement `route`, `auth_error`, `error_response`.

    `renamed_field` is the (old, new) key pair a "renamed_field" fault applies.
    """

    platform: str = ""
    renamed_field: tuple[str, str] = ("", "")

    def __init__(self, world: SandboxWorld, *, token: str, as_of: datetime | None = None) -> None:
        self.world = world
        self.token = token
        self.as_of = as_of or datetime.now(UTC)
        self.requests: list[httpx.Request] = []
        self._faults: list[Fault] = []
        self._seen: dict[int, int] = {}
        self._lock = threading.Lock()

    # ---- faults -------------------------------------------------------------------

    def inject(self, kind: FaultKind, **kwargs: Any) -> Fault:
        fault = Fault(kind=kind, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, request: httpx.Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times <= 0 or fault.path_contains not in str(request.url):
                    continue
                seen = self._seen.get(id(fault), 0)
                self._seen[id(fault)] = seen + 1
                if seen < fault.skip:
                    continue
                fault.times -= 1
                return fault
        return None

    # ---- handling -----------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault is not None and fault.kind == "timeout":
            raise SimulatedTimeout(fault.delay)
        if fault is not None and fault.kind not in ("truncated", "renamed_field"):
            return self.error_response(fault, request)
        if not self.is_authorized(request):
            return self.auth_error(request)
        response = self.route(request)
        if fault is not None and fault.kind == "renamed_field" and response.status_code == 200:
            old, new = self.renamed_field
            body = rename_key(json.loads(response.content), old, new)
            response = json_response(200, body, dict(response.headers))
        if fault is not None and fault.kind == "truncated":
            content = response.content[: max(1, len(response.content) // 2)]
            headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            response = httpx.Response(response.status_code, content=content, headers=headers)
        return response

    def is_authorized(self, request: httpx.Request) -> bool:
        raise NotImplementedError

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def error_response(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def route(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    # ---- serving ------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """In-process transport: no sockets, the same wire format."""

        def handler(request: httpx.Request) -> httpx.Response:
            request.read()
            try:
                return self.handle(request)
            except SimulatedTimeout as exc:
                raise httpx.ReadTimeout(str(exc), request=request) from None

        return httpx.MockTransport(handler)


class RunningServer:
    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host, self.port = str(server.server_address[0]), int(server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_class(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr access log
            return

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            address = self.server.server_address
            assert isinstance(address, tuple)
            request = httpx.Request(
                self.command,
                f"http://{address[0]}:{address[1]}{self.path}",
                headers=list(self.headers.items()),
                content=body,
            )
            try:
                response = api.handle(request)
            except SimulatedTimeout as exc:
                time.sleep(exc.seconds)
                self.close_connection = True
                return
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = do_PUT = do_DELETE = _dispatch

    return Handler


@contextmanager
def serve(api: FakeApi) -> Iterator[RunningServer]:
    """Serve `api` on a real 127.0.0.1 socket (an ephemeral port) for the block's lifetime."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(api))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"fake-{api.platform}",
        daemon=True,
    )
    thread.start()
    running = RunningServer(server, thread)
    try:
        yield running
    finally:
        running.stop()


def base_url_of(request: httpx.Request) -> str:
    """Scheme and host of the incoming request, for absolute paging links."""
    return f"{request.url.scheme}://{request.url.netloc.decode()}"
