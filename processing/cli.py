"""``wellsense process --config FILE``: run one processing worker.

Logs are JSON lines on stdout (for journald). Exit codes: 0 after SIGTERM or
SIGINT, 2 on a configuration error, 3 when InfluxDB refuses the token, org or
bucket (401/403/404): the service stops loudly instead of acknowledging
messages it cannot store.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

EXIT_CONFIG = 2

def configure_logging(level: str = "info") -> None:
    """JSON lines on stdout, shared with the collector (``collector.logs``)."""
    from collector import logs

    logs.configure(level)


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
