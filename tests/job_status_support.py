"""Real parts for the job_status tests: an alert webhook (an HTTP server on 127.0.0.1, like
Slack's incoming webhook) and another process holding the DuckDB file's write lock."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Slack's webhook URLs carry their token in the path.
SECRET_PATH = "/services/T0CFAP/B0ALERTS/s3cr3t-webhook-token"


@dataclass
class WebhookReceiver:
    """What the server received; it answers `statuses` in order, then 200."""

    url: str
    statuses: list[int]
    delay_seconds: float
    received: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.received.append(json.loads(body))
                receiver.content_types.append(self.headers.get("Content-Type", ""))
            time.sleep(receiver.delay_seconds)
            status = receiver.next_status()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")
            except (BrokenPipeError, ConnectionResetError):
                return  # the client timed out and left: that is what a slow-webhook test wants

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    return Handler


@contextmanager
def webhook_receiver(
    statuses: Sequence[int] = (), *, delay_seconds: float = 0.0
) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver("", list(statuses), delay_seconds)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def held_duckdb_lock(path: str) -> Iterator[None]:
    """Hold a write connection to the DuckDB file `path` open from another process."""
    script = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
        "print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
