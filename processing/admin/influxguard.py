"""A write guard in front of InfluxDB, so the processing service cannot delete data.

InfluxDB 2.x OSS ties deletion to write permission: a token that may write
a bucket may also delete any of its points (``/api/v2/delete``) and even the
bucket itself. Processing must write, so no InfluxDB token can stop a
compromised or buggy processing service from erasing the study's raw data.
This guard can: processing talks to it with its own credential and never
holds an InfluxDB token. It forwards only

* ``POST /api/v2/write`` to the raw bucket,
* ``POST /api/v2/query`` (Flux; the InfluxDB token behind it can only read
  and write the raw bucket, and Flux cannot delete),
* ``POST /api/v2/delete`` of **one feature point**: ``_measurement`` is
  ``hrv_window`` or ``daily`` and the time range is at most one second
  (processing replaces a recomputed feature this way; features are derived
  and can be recomputed from raw data),
* ``GET /health`` and ``GET /ping``,

and answers 403 to everything else (bucket, token, task and org changes,
deletes of raw data). Run it on the InfluxDB host; bind InfluxDB so that
processing cannot reach it directly.

    wellsense influx-guard --listen 127.0.0.1:8087 --influx-url http://127.0.0.1:8086 \\
        --org wellsense --bucket wellsense \\
        --influx-token-file /etc/wellsense/influx-processing-token \\
        --client-token-file /etc/wellsense/influx-guard-client-token
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

FEATURE_MEASUREMENTS = frozenset({"hrv_window", "daily"})
MAX_BODY_BYTES = 64 * 1024 * 1024
_PASS_HEADERS = ("Content-Type", "Content-Encoding", "Accept", "Accept-Encoding")
_MEASUREMENT = re.compile(r'^_measurement\s*=\s*"([^"]+)"(\s+AND\s+[a-z_]+\s*=\s*"[^"]*")*$')


def delete_allowed(body: bytes) -> bool:
    """Only the deletion of one feature point (a range of at most one second)."""
    try:
        request = json.loads(body)
        start = datetime.fromisoformat(request["start"].replace("Z", "+00:00"))
        stop = datetime.fromisoformat(request["stop"].replace("Z", "+00:00"))
        predicate = request.get("predicate", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    match = _MEASUREMENT.match(predicate.strip()) if isinstance(predicate, str) else None
    return (
        match is not None
        and match.group(1) in FEATURE_MEASUREMENTS
        and 0 <= (stop - start).total_seconds() <= 1.0
    )


class Guard(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        listen: tuple[str, int],
        *,
        influx_url: str,
        influx_token: str,
        client_token: str,
        org: str,
        bucket: str,
    ) -> None:
        super().__init__(listen, _Handler)
        self.influx_url = influx_url.rstrip("/")
        self.influx_token = influx_token
        self.client_token = client_token
        self.org = org
        self.bucket = bucket


class _Handler(BaseHTTPRequestHandler):
    server: Guard
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        # One line per request, without headers (they hold the token).
        log.info("%s %s", self.command, self.path.split("?", 1)[0])

    def _deny(self, status: int, message: str) -> None:
        body = json.dumps({"code": "forbidden", "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log.warning("refused %s %s: %s", self.command, self.path.split("?", 1)[0], message)

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        expected = f"Token {self.server.client_token}"
        return hmac.compare_digest(given.encode(), expected.encode())

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/health", "/ping"):
            self._forward(b"")
        else:
            self._deny(403, f"{path} is not allowed through the guard")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return self._deny(413, "request too large")
        body = self.rfile.read(length) if length else b""
        if not self._authorised():
            return self._deny(401, "unauthorized")
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        if params.get("org", [self.server.org]) != [self.server.org]:
            return self._deny(403, "another org")
        if url.path == "/api/v2/query":
            return self._forward(body)
        if url.path in ("/api/v2/write", "/api/v2/delete"):
            if params.get("bucket") != [self.server.bucket]:
                return self._deny(403, "only the raw bucket")
            if url.path == "/api/v2/delete" and not delete_allowed(body):
                return self._deny(403, "only a single feature point may be deleted")
            return self._forward(body)
        return self._deny(403, f"{url.path} is not allowed through the guard")

    def do_DELETE(self) -> None:
        self._deny(403, "deleting resources is not allowed through the guard")

    do_PUT = do_PATCH = do_DELETE

    def _forward(self, body: bytes) -> None:
        headers = {h: v for h in _PASS_HEADERS if (v := self.headers.get(h))}
        headers["Authorization"] = f"Token {self.server.influx_token}"
        request = urllib.request.Request(
            self.server.influx_url + self.path,
            data=body if self.command == "POST" else None,
            method=self.command,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                status, out, reply_headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, out, reply_headers = exc.code, exc.read(), exc.headers
        except (urllib.error.URLError, OSError):
            return self._deny(503, "InfluxDB is unreachable")
        self.send_response(status)
        for name in ("Content-Type", "Content-Encoding", "Retry-After"):
            if reply_headers.get(name):
                self.send_header(name, reply_headers[name])
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def _secret(path: Path) -> str:
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} is readable by others; run: chmod 600 {path}")
    return path.read_text().strip()


def main(argv: list[str], prog: str = "wellsense influx-guard") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Forward processing's writes and queries to InfluxDB; refuse deletes.",
    )
    parser.add_argument("--listen", default="127.0.0.1:8087", help="HOST:PORT")
    parser.add_argument("--influx-url", default="http://127.0.0.1:8086")
    parser.add_argument("--org", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--influx-token-file", type=Path, required=True)
    parser.add_argument("--client-token-file", type=Path, required=True)
    args = parser.parse_args(argv)
    from collector import logs

    logs.configure("info")
    host, _, port = args.listen.rpartition(":")
    try:
        guard = Guard(
            (host, int(port)),
            influx_url=args.influx_url,
            org=args.org,
            bucket=args.bucket,
            influx_token=_secret(args.influx_token_file),
            client_token=_secret(args.client_token_file),
        )
    except (OSError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    log.info("influx guard listening", extra={"listen": args.listen, "bucket": args.bucket})
    try:
        guard.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        guard.server_close()
    return 0
