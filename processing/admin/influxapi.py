"""A small InfluxDB 2.x HTTP client for the admin tools (standard library only).

Only what set-up and erasure need: JSON requests with a token, Flux queries
returning CSV, and the delete endpoint. The token travels in a header and
is never part of an error message.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class InfluxApiError(RuntimeError):
    """An InfluxDB request failed; ``status`` is the HTTP status (0: unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class InfluxApi:
    """``url``: e.g. ``http://127.0.0.1:8086``; ``token``: sent as ``Authorization: Token``."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"InfluxApi({self.url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(
            f"{self.url}{path}{query}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Token {self._token}",
                "Content-Type": content_type,
                "Accept": accept,
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise InfluxApiError(exc.code, f"{method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InfluxApiError(0, f"cannot reach InfluxDB at {self.url}: {reason}") from None

    def get(self, path: str, **params: str) -> Any:
        return json.loads(self.request("GET", path, params=params or None))

    def post(self, path: str, body: Any, **params: str) -> Any:
        out = self.request("POST", path, body=body, params=params or None)
        return json.loads(out) if out else None

    def patch(self, path: str, body: Any) -> Any:
        return json.loads(self.request("PATCH", path, body=body))

    def delete_resource(self, path: str) -> None:
        self.request("DELETE", path)

    def write(self, org: str, bucket: str, lines: str) -> None:
        self.request(
            "POST",
            "/api/v2/write",
            params={"org": org, "bucket": bucket, "precision": "ns"},
            raw=lines.encode(),
            content_type="text/plain; charset=utf-8",
        )

    def query(self, org: str, flux: str) -> list[dict[str, str]]:
        """Run ``flux``; return its rows (annotated CSV, header rows merged)."""
        out = self.request(
            "POST",
            "/api/v2/query",
            params={"org": org},
            body={"query": flux, "type": "flux", "dialect": {"annotations": []}},
            accept="application/csv",
        )
        rows: list[dict[str, str]] = []
        header: list[str] | None = None
        for record in csv.reader(io.StringIO(out.decode())):
            if not record or not any(record):
                header = None  # a blank line starts a new table with its own header
                continue
            if header is None:
                header = record
                continue
            rows.append(dict(zip(header, record, strict=False)))
        return rows

    def delete_points(self, org: str, bucket: str, start: str, stop: str, predicate: str) -> None:
        self.request(
            "POST",
            "/api/v2/delete",
            params={"org": org, "bucket": bucket},
            body={"start": start, "stop": stop, "predicate": predicate},
        )
