"""A write guard in front of InfluxDB, so the processing service cannot delete data.

InfluxDB 2.x OSS ties deletion to write permission: a token that may write
a bucket may also delete any of its points (``/api/v2/delete``) and even the
bucket itself. Processing must write, so no InfluxDB token can stop a
compromised or buggy processing service from erasing the study's raw data.
This guard can: processing talks to it with its own credential and never
holds an InfluxDB token. It forwards only

* ``POST /api/v2/write`` to the raw bucket (line protocol, as sent),
* ``POST /api/v2/query`` of Flux within the rule of
  :mod:`processing.admin.fluxguard` (no imports, only the raw bucket, only
  listed read-only functions),
* ``POST /api/v2/delete`` of **one feature point**: ``_measurement`` is
  ``hrv_window`` or ``daily``, the other terms are tag equalities, and the
  time range is at most one second (processing replaces a recomputed
  feature this way; features are derived and can be recomputed),
* ``GET /health`` and ``GET /ping``,

and answers 403 to everything else (bucket, token, task and org changes,
deletes of raw data). It forwards exactly what it validated: JSON bodies
(query, delete) are parsed, refused if any key is unknown, repeated or a
case variant (InfluxDB decodes JSON keys case-insensitively with Unicode
folding, last one winning: ``Predicate``, ``start`` spelled with the long s
U+017F, a ``k`` spelled with the Kelvin sign U+212A...), and re-encoded;
the URL is rebuilt from the validated ``org``, ``bucket`` and
``precision``. A request is authenticated before its body is read; a
missing, negative, non-numeric or too large Content-Length, or chunked
transfer encoding, is refused without reading. Run it on the InfluxDB host;
bind InfluxDB so that processing cannot reach it directly.

    wellsense influx guard --listen 127.0.0.1:8087 --influx-url http://127.0.0.1:8086 \\
        --org wellsense --bucket wellsense \\
        --influx-token-file /etc/wellsense/influx-processing-token \\
        --client-token-file /etc/wellsense/influx-guard-client-token
"""

from __future__ import annotations

import argparse
import calendar
import hmac
import http.client
import json
import logging
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from processing.admin import fluxguard
from wellsense_cli.conventions import exit_code_for

log = logging.getLogger(__name__)

FEATURE_MEASUREMENTS = frozenset({"hrv_window", "daily"})
#: Tag keys a feature-point delete may name besides ``_measurement``.
DELETE_TAGS = frozenset({"study", "participant", "device", "window", "source", "tz"})
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024  # a query or delete body
PRECISIONS = frozenset({"ns", "us", "ms", "s"})
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")
_TERM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([A-Za-z0-9_.:-]*)"\s*')
_DIALECT_KEYS = {
    "header": bool,
    "delimiter": str,
    "annotations": list,
    "commentPrefix": str,
    "dateTimeFormat": str,
}
_ANNOTATIONS = frozenset({"group", "datatype", "default"})


class Refused(ValueError):
    """A request the guard does not forward; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- bodies


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Go's encoding/json matches keys case-insensitively (Unicode simple
    # folding: U+017F is "s", U+212A is "k") and the last one wins, so a second
    # spelling of a key we checked could replace it at InfluxDB. Refuse them all.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refused(400, f"duplicate JSON key {key!r}")
        seen[key] = value
    return seen


def strict_json(
    body: bytes, allowed: Iterable[str], required: Iterable[str] = ()
) -> dict[str, Any]:
    """A JSON object whose keys are exactly spelled, unique and in ``allowed``."""
    if len(body) > MAX_JSON_BYTES:
        raise Refused(413, f"JSON body larger than {MAX_JSON_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_strict_object)
    except Refused:
        raise
    except (ValueError, RecursionError) as exc:
        raise Refused(400, f"body is not valid JSON: {str(exc)[:100]}") from None
    if not isinstance(value, dict):
        raise Refused(400, "body must be a JSON object")
    allowed = set(allowed)
    unknown = sorted(k for k in value if k not in allowed)
    if unknown:
        raise Refused(403, f"unknown or case-variant key {unknown[0][:40]!r}")
    missing = sorted(k for k in required if k not in value)
    if missing:
        raise Refused(400, f"missing key {missing[0]!r}")
    return value


def parse_time_ns(text: object) -> int:
    """RFC 3339 (nanoseconds, ``Z`` or an offset) as ns since the epoch."""
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise Refused(400, "start and stop must be RFC 3339 times")
    y, mo, d, h, mi, sec = (int(g) for g in match.groups()[:6])
    frac, zone = match.group(7) or "", match.group(8)
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and sec < 60):
        raise Refused(400, "start and stop must be valid times")
    offset_s = 0
    if zone != "Z":
        offset_s = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (1 if zone[0] == "+" else -1)
    seconds = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) - offset_s
    return seconds * 10**9 + int(frac.ljust(9, "0") or 0)


def rfc3339_ns(ts_ns: int) -> str:
    seconds, frac = divmod(ts_ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def canonical_delete(body: bytes) -> bytes:
    """The delete body re-encoded, if it deletes one feature point; else :class:`Refused`.

    Allowed: ``{"start", "stop", "predicate"}`` with stop - start <= 1 s and
    a predicate ``_measurement="hrv_window"|"daily"`` AND-ed with distinct
    equalities on :data:`DELETE_TAGS`.
    """
    request = strict_json(body, ("start", "stop", "predicate"), ("start", "stop", "predicate"))
    start, stop = parse_time_ns(request["start"]), parse_time_ns(request["stop"])
    if not 0 <= stop - start <= 10**9:
        raise Refused(403, "only a single feature point (at most one second) may be deleted")
    predicate = request["predicate"]
    if not isinstance(predicate, str) or len(predicate) > 1000:
        raise Refused(403, "the predicate must be a short string")
    terms: dict[str, str] = {}
    for part in re.split(r"\s+AND\s+", predicate.strip()):
        match = _TERM.fullmatch(part)
        if match is None:
            raise Refused(403, "the predicate must be tag equalities joined by AND")
        key, value = match.groups()
        if key in terms:
            raise Refused(403, f"{key} appears twice in the predicate")
        terms[key] = value
    if terms.get("_measurement") not in FEATURE_MEASUREMENTS:
        raise Refused(403, "only hrv_window or daily points may be deleted")
    if not set(terms) - {"_measurement"} <= DELETE_TAGS:
        raise Refused(403, f"the predicate may name only {sorted(DELETE_TAGS)}")
    text = " AND ".join(
        [f'_measurement="{terms["_measurement"]}"']
        + [f'{k}="{v}"' for k, v in terms.items() if k != "_measurement"]
    )
    canonical = {"start": rfc3339_ns(start), "stop": rfc3339_ns(stop), "predicate": text}
    return json.dumps(canonical, separators=(",", ":")).encode()


def delete_allowed(body: bytes) -> bool:
    """True if :func:`canonical_delete` accepts ``body``."""
    try:
        canonical_delete(body)
    except Refused:
        return False
    return True


def _canonical_dialect(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Refused(400, "dialect must be an object")
    for key, item in value.items():
        kind = _DIALECT_KEYS.get(key)
        if kind is None:
            raise Refused(403, f"unknown or case-variant dialect key {key[:40]!r}")
        if not isinstance(item, kind):
            raise Refused(400, f"dialect.{key} has the wrong type")
    annotations = value.get("annotations", [])
    if not all(a in _ANNOTATIONS for a in annotations):
        raise Refused(400, "unknown dialect annotation")
    if value.get("dateTimeFormat", "RFC3339") not in ("RFC3339", "RFC3339Nano"):
        raise Refused(400, "unknown dialect dateTimeFormat")
    if len(value.get("delimiter", ",")) != 1 or len(value.get("commentPrefix", "#")) > 1:
        raise Refused(400, "bad dialect delimiter or comment prefix")
    return dict(value)


def _empty_extern(value: object) -> bool:
    # influxdb-client always sends an empty Flux AST file; anything in it is
    # Flux we would not have read (imports, options), so it must be empty.
    if value is None:
        return True
    if not isinstance(value, dict) or set(value) - {"type", "imports", "body", "package", "name"}:
        return False
    return (
        value.get("type") in (None, "File")
        and not value.get("imports")
        and not value.get("body")
        and value.get("package") is None
        and value.get("name") in (None, "")
    )


def canonical_query(body: bytes, bucket: str) -> bytes:
    """The query body re-encoded if its Flux is allowed (:mod:`fluxguard`); else refused."""
    request = strict_json(body, ("query", "type", "dialect", "extern"), ("query",))
    flux = request["query"]
    if not isinstance(flux, str):
        raise Refused(400, "query must be a string")
    if request.get("type", "flux") != "flux":
        raise Refused(403, "only Flux queries")
    if not _empty_extern(request.get("extern")):
        raise Refused(403, "extern Flux is not allowed")
    try:
        fluxguard.check(flux, bucket)
    except fluxguard.FluxRefused as exc:
        raise Refused(403, f"Flux refused: {exc}") from None
    canonical: dict[str, Any] = {"query": flux, "type": "flux"}
    if "dialect" in request:
        canonical["dialect"] = _canonical_dialect(request["dialect"])
    return json.dumps(canonical, separators=(",", ":")).encode()


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise Refused(400, f"{name} given {len(values)} times")
    return values[0]


# --------------------------------------------------------------------------- server


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
        if not client_token.strip() or not influx_token.strip():
            raise ValueError("empty token: the client and InfluxDB tokens must not be empty")
        if any(c.isspace() for c in client_token):
            raise ValueError("the client token must not contain white space")
        url = urllib.parse.urlsplit(influx_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"--influx-url must be http(s)://host:port, not {influx_url!r}")
        super().__init__(listen, _Handler)
        self.influx_url = influx_url.rstrip("/")
        self.influx = url
        self.influx_token = influx_token
        self.client_token = client_token
        self.org = org
        self.bucket = bucket
        self._local = threading.local()

    def connection(self, *, fresh: bool = False) -> http.client.HTTPConnection:
        """This thread's keep-alive connection to InfluxDB."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            cls = (
                http.client.HTTPSConnection
                if self.influx.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(self.influx.hostname or "", self.influx.port, timeout=120)
            self._local.conn = conn
        return conn


class _Handler(BaseHTTPRequestHandler):
    server: Guard
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        # One line per request, without headers (they hold the token).
        log.info("%s %s", self.command, self.path.split("?", 1)[0][:200])

    def _deny(self, status: int, message: str, *, close: bool = False) -> None:
        body = json.dumps({"code": "forbidden", "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            # The request body was not read: the connection cannot be reused.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        log.warning("refused %s %s: %s", self.command, self.path.split("?", 1)[0][:200], message)

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme != "Token" or not token:
            return False
        return hmac.compare_digest(token.encode(), self.server.client_token.encode())

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/health", "/ping") and not self.headers.get("Content-Length"):
            self._forward("GET", path, b"", {})
        else:
            self._deny(403, f"{path[:200]} is not allowed through the guard", close=True)

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding") is not None:
            raise Refused(411, "chunked transfer encoding is not accepted; send Content-Length")
        values = self.headers.get_all("Content-Length") or []
        if len(values) != 1:
            raise Refused(411, "exactly one Content-Length is required")
        text = values[0].strip()
        if not text.isdigit() or not text.isascii():
            raise Refused(400, "Content-Length must be a non-negative integer")
        length = int(text)
        if length > MAX_BODY_BYTES:
            raise Refused(413, f"request larger than {MAX_BODY_BYTES} bytes")
        return length

    def do_POST(self) -> None:
        try:
            # Nothing of the body is read before the credential and the length are checked.
            if not self._authorised():
                raise Refused(401, "unauthorized")
            length = self._content_length()
            url = urllib.parse.urlsplit(self.path)
            path, params, headers = self._route(url)
        except Refused as exc:
            return self._deny(exc.status, str(exc), close=True)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            return self._deny(400, "request body shorter than Content-Length", close=True)
        try:
            if path == "/api/v2/query":
                body = canonical_query(body, self.server.bucket)
            elif path == "/api/v2/delete":
                body = canonical_delete(body)
        except Refused as exc:
            return self._deny(exc.status, str(exc))
        self._forward("POST", f"{path}?{urllib.parse.urlencode(params)}", body, headers)

    def _route(self, url: urllib.parse.SplitResult) -> tuple[str, dict[str, str], dict[str, str]]:
        """(path, validated query parameters, headers to send) of an allowed POST."""
        params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        allowed = {
            "/api/v2/write": {"org", "bucket", "precision"},
            "/api/v2/query": {"org"},
            "/api/v2/delete": {"org", "bucket"},
        }.get(url.path)
        if allowed is None:
            raise Refused(403, f"{url.path[:200]} is not allowed through the guard")
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise Refused(403, f"query parameter {unknown[0][:40]!r} is not allowed")
        org = _one(params, "org")
        if org != self.server.org:
            raise Refused(403, "only the study's org (?org=...)")
        out = {"org": org}
        if "bucket" in allowed:
            if _one(params, "bucket") != self.server.bucket:
                raise Refused(403, "only the raw bucket")
            out["bucket"] = self.server.bucket
        precision = _one(params, "precision")
        if precision is not None:
            if precision not in PRECISIONS:
                raise Refused(400, "unknown precision")
            out["precision"] = precision
        headers = {"Accept": self.headers.get("Accept") or "application/json"}
        if self.headers.get("Accept-Encoding") == "gzip":
            headers["Accept-Encoding"] = "gzip"
        encoding = self.headers.get("Content-Encoding")
        if url.path == "/api/v2/write":
            headers["Content-Type"] = "text/plain; charset=utf-8"
            if encoding not in (None, "identity", "gzip"):
                raise Refused(415, "Content-Encoding must be gzip or identity")
            if encoding == "gzip":
                headers["Content-Encoding"] = "gzip"
        else:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type != "application/json" or encoding not in (None, "identity"):
                raise Refused(415, "query and delete bodies must be uncompressed application/json")
            headers["Content-Type"] = "application/json"
        return url.path, out, headers

    def do_DELETE(self) -> None:
        self._deny(403, "deleting resources is not allowed through the guard", close=True)

    do_PUT = do_PATCH = do_HEAD = do_OPTIONS = do_DELETE

    def _forward(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> None:
        headers = {**headers, "Authorization": f"Token {self.server.influx_token}"}
        if method == "POST":
            headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):
            conn = self.server.connection(fresh=attempt == 1)
            try:
                conn.request(method, target, body=body or None, headers=headers)
                resp = conn.getresponse()
                status, out = resp.status, resp.read()
                reply_headers = resp.headers
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                if attempt == 1:
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
    text = path.read_text().strip()
    if not text:
        # An empty client token would let "Authorization: Token " through.
        raise ValueError(f"{path} is empty; refusing to start without a token")
    return text


def main(argv: list[str], prog: str = "wellsense influx guard") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Forward processing's writes and queries to InfluxDB; refuse deletes.",
    )
    parser.add_argument("--listen", default="127.0.0.1:8087", help="HOST:PORT")
    parser.add_argument(
        "--influx-url", default="http://127.0.0.1:8086", help="InfluxDB (default: %(default)s)"
    )
    parser.add_argument("--org", required=True, help="InfluxDB organisation")
    parser.add_argument("--bucket", required=True, help="the only bucket it lets through")
    parser.add_argument(
        "--influx-token-file",
        type=Path,
        required=True,
        help="processing's InfluxDB token (chmod 600); only the guard holds it",
    )
    parser.add_argument(
        "--client-token-file",
        type=Path,
        required=True,
        help="the token processing presents to the guard (chmod 600)",
    )
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
        return exit_code_for(exc)
    log.info("influx guard listening", extra={"listen": args.listen, "bucket": args.bucket})
    try:
        guard.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        guard.server_close()
    return 0
