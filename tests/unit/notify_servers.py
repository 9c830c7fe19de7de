"""Real local receivers for the alert-delivery tests: an SMTP server and an HTTP endpoint.

The SMTP server is aiosmtpd's (a real SMTP implementation listening on a
local port); the webhook receiver is the standard library's HTTP server.
Both record what arrived; nothing is mocked on the sending side.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpServer:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)

    def url(self, to: str = "staff@example.org") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=wellsense@example.org&to={to}&mode=insecure"

    def bodies(self) -> list[str]:
        out = []
        for m in self.messages:
            part = m.get_body(("plain",))
            out.append(f"{m['Subject']}\n{part.get_content() if part else ''}")
        return out


@dataclass
class WebhookServer:
    port: int
    fail_next: int = 0  # answer this many requests with 500 first
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    server = SmtpServer(free_port())
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # it logs every address at INFO

    class Handler:
        async def handle_DATA(self, srv: Any, session: Any, envelope: Any) -> str:
            raw = envelope.original_content or envelope.content
            server.messages.append(
                email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[arg-type]
            )
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    state = WebhookServer(0)
    lock = threading.Lock()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                refuse = state.fail_next > 0
                if refuse:
                    state.fail_next -= 1
                    state.refused += 1
                else:
                    state.received.append(json.loads(body))
            self.send_response(500 if refuse else 200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    state.port = httpd.server_port
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
