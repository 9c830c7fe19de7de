"""JSON-lines logging for the services (one object per line, for journald).

Library modules log to their module logger and stay silent by default; only
a service's entry point calls :func:`configure`. Messages carry pseudonyms
and ids, never secrets (settings objects hide passwords in their repr) and
never Bluetooth addresses (:mod:`collector.redact` rewrites every line).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from collector import redact

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Structured fields travel as top-level keys: `extra={...}` puts them on
        # the record directly, `extra={"fields": {...}}` groups them.
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        fields = extra.pop("fields", None)
        entry.update(extra)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # No Bluetooth address reaches a log, whatever an exception text carries.
        return redact.addresses(json.dumps(entry, default=str))


def configure(level: str = "info", stream: TextIO = sys.stdout) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at debug level and could log request headers.
    for noisy in ("urllib3", "paho", "influxdb_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
