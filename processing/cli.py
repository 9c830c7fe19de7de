"""``wellsense process --config FILE``: run one processing worker.

Logs are JSON lines on stdout (for journald). Exit codes: 0 after SIGTERM or
SIGINT, 2 on a configuration error, 3 when InfluxDB refuses the token, org or
bucket (401/403/404): the service stops loudly instead of acknowledging
messages it cannot store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_CONFIG = 2

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, allow_nan=True)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paho and urllib3 are chatty at debug level and could log request headers.
    for noisy in ("urllib3", "paho", "influxdb_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str], prog: str = "wellsense process") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Subscribe to the study's MQTT topics, validate, de-duplicate and store "
        "the data in InfluxDB 2.x, and compute window and daily features.",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="TOML file")
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    log = logging.getLogger("wellsense.processing")

    from processing.config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as exc:
        log.error("configuration error", extra={"fields": {"error": str(exc)}})
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"{args.config}: ok")
        return 0

    from processing.service import Service

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stop requested", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return Service(config, stop=stop).run()
