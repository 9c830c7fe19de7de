"""Write line protocol to InfluxDB 2.x, classifying every failure into an action.

=============================  ==============================================
response                       action
=============================  ==============================================
204                            written (durable: in InfluxDB's WAL)
429, 5xx, connection error     retry the same body until it succeeds or the
                               service stops: exponential backoff with jitter,
                               or exactly Retry-After when the server sends it
413 (body too large)           split the batch in halves and write each
400, 422 (rejected data)       raise :class:`RejectedError` with the server's
                               reason; the caller isolates the bad message(s)
401, 403, 404 (credentials,    raise :class:`FatalWriteError`: nothing a retry
bucket or org)                 can fix; the service stops loudly
=============================  ==============================================

We speak HTTP directly (one keep-alive connection) instead of going through
influxdb-client's ``WriteApi``: we already produce line protocol, and every
status code and header must reach the classification above unchanged
(``WriteApi`` retries and batches on its own).
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from collector import safejson

if TYPE_CHECKING:
    from processing.config import InfluxConfig

log = logging.getLogger(__name__)


class WriteError(Exception):
    """Base of the writer's errors; ``status`` is the HTTP status (0: none)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}" if status else message)


class RejectedError(WriteError):
    """InfluxDB refused the data itself (400/422); retrying cannot help."""


class FatalWriteError(WriteError):
    """Credentials, bucket or org are wrong (401/403/404): stop, do not ack."""


class StoppedError(WriteError):
    """The service is stopping while a write was still being retried."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    retry_after_s: float | None
    message: str


@dataclass
class WriterCounters:
    writes: int = 0
    points: int = 0
    retries: int = 0
    splits: int = 0
    last_latency_s: float = 0.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only), else None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [c/2, c], c = min(max, base * 2**attempt).

    The jitter spreads the retries of several workers after an outage; the
    lower bound keeps the backoff growing.
    """
    ceiling = min(max_s, base_s * (2 ** min(attempt, 30)))
    return rng.uniform(ceiling / 2, ceiling)


class InfluxWriter:
    """Writes line protocol to one bucket.

    Args:
        url, org, bucket, token: the InfluxDB 2.x target.
        timeout_s: per HTTP request.
        retry_base_s, retry_max_s: backoff between retries of a transient error.
        stop: when set, a retry loop gives up with :class:`StoppedError`.
        on_retry: called with (status, delay) before each wait, for counters and logs.
    """

    @classmethod
    def for_config(
        cls,
        influx: InfluxConfig,
        *,
        stop: threading.Event | None = None,
        on_retry: Callable[[int, float, str], None] | None = None,
    ) -> InfluxWriter:
        """A writer for the ``[influx]`` table of the processing configuration."""
        return cls(
            url=influx.url,
            org=influx.org,
            bucket=influx.bucket,
            token=influx.token,
            timeout_s=influx.timeout_s,
            retry_max_s=influx.retry_max_s,
            stop=stop,
            on_retry=on_retry,
        )

    def __init__(
        self,
        *,
        url: str,
        org: str,
        bucket: str,
        token: str,
        timeout_s: float = 10.0,
        retry_base_s: float = 0.2,
        retry_max_s: float = 30.0,
        stop: threading.Event | None = None,
        on_retry: Callable[[int, float, str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        base = parts.path.rstrip("/")
        query = urlencode({"org": org, "bucket": bucket, "precision": "ns"})
        self._path = f"{base}/api/v2/write?{query}"
        self._headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "text/plain; charset=utf-8",
        }
        self.timeout_s = timeout_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.stop = stop or threading.Event()
        self.on_retry = on_retry
        self.counters = WriterCounters()
        self._rng = rng or random.Random()
        self._conn: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:  # the token stays out of every repr and log line
        return f"InfluxWriter({self._host}:{self._port})"

    # -- transport ---------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout_s)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, body: bytes) -> Response:
        """One HTTP request; connection errors come back as status 0."""
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=self._headers)
            resp = conn.getresponse()
            data = resp.read()
            retry_after = parse_retry_after(resp.getheader("Retry-After"))
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()
            return Response(0, None, f"connection error: {type(exc).__name__}: {exc}"[:300])
        return Response(resp.status, retry_after, _server_message(data))

    # -- writing -----------------------------------------------------------------

    def write(self, lines: Sequence[str]) -> None:
        """Write ``lines`` durably or raise; transient errors are retried here."""
        if not lines:
            return
        self._write(lines)

    def _write(self, lines: Sequence[str]) -> None:
        body = "\n".join(lines).encode()
        attempt = 0
        while True:
            started = time.monotonic()
            resp = self.post(body)
            status = resp.status
            if status == 204:
                self.counters.writes += 1
                self.counters.points += len(lines)
                self.counters.last_latency_s = time.monotonic() - started
                return
            if status == 413:
                if len(lines) == 1:
                    raise RejectedError(413, resp.message or "point too large")
                self.counters.splits += 1
                half = len(lines) // 2
                self._write(lines[:half])
                self._write(lines[half:])
                return
            if status in (400, 422):
                raise RejectedError(status, resp.message)
            if status in (401, 403, 404):
                raise FatalWriteError(status, resp.message)
            if status == 0 or status == 429 or status >= 500 or status == 408:
                delay = backoff_s(
                    attempt, base_s=self.retry_base_s, max_s=self.retry_max_s, rng=self._rng
                )
                if resp.retry_after_s is not None:
                    delay = max(min(resp.retry_after_s, 3600.0), 0.0)
                self.counters.retries += 1
                if self.on_retry is not None:
                    self.on_retry(status, delay, resp.message)
                attempt += 1
                if self.stop.wait(delay):
                    raise StoppedError(status, "stopping while InfluxDB was unavailable")
                continue
            # Anything else is unexpected: treat like rejected data rather than loop.
            raise RejectedError(status, resp.message or "unexpected response")


def _server_message(data: bytes) -> str:
    """InfluxDB's JSON error ``message`` (or the raw body), shortened for logs."""
    if not data:
        return ""
    try:
        parsed = safejson.loads(data, max_bytes=1 << 20)
    except safejson.UnsafeJsonError:
        return data[:300].decode(errors="replace")
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])[:300]
    return data[:300].decode(errors="replace")
