"""A real HTTP webhook receiver for the tests: http.server on 127.0.0.1, in a thread."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson

from driftline.broker import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # wall clock when it arrived

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-driftline-signature", ""))


class WebhookReceiver:
    """Records every POST; answers ``statuses`` in turn (then 200), after ``delay_s``, and
    not before ``hold`` is set (a receiver that hangs until the test lets it go)."""

    def __init__(self, port: int | None = None, statuses: tuple[int, ...] = ()) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.statuses = list(statuses)
        self.delay_s = 0.0
        self.hold = threading.Event()
        self.hold.set()
        self.attempts = 0  # every POST, whatever the answer
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.attempts += 1
                time.sleep(receiver.delay_s)
                receiver.hold.wait(30)
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status == 200:
                        receiver.received.append(
                            Received(
                                self.path,
                                {k.lower(): v for k, v in self.headers.items()},
                                body,
                                time.time(),
                            )
                        )
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.hold.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self) -> list[tuple[str, str]]:
        """(event, alert id) of each accepted notification, in arrival order."""
        with self._lock:
            return [(r.json["event"], r.json["alert"]["id"]) for r in self.received]

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
