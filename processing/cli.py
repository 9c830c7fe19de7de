"""``wellsense process --config FILE``: run one processing worker.

Logs are JSON lines on stdout (for journald). Exit codes: 0 after SIGTERM or
SIGINT, 2 on a configuration error, 4 when InfluxDB refuses the token, org or
bucket (401/403/404): the service stops loudly instead of acknowledging
messages it cannot store. The unit lists 2 and 4 in RestartPreventExitStatus=
(wellsense_cli.conventions).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from wellsense_cli.conventions import EXIT_USAGE as EXIT_CONFIG


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
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="least severe log level written (default info)",
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
    from processing.rules.errors import RuleSetError

    try:
        rules_thread = _start_rules(config, stop, log) if config.rules.enabled else None
    except RuleSetError as exc:
        for problem in exc.errors:
            print(problem.render(), file=sys.stderr)
        print(f"{prog}: {len(exc.errors)} errors in the rules; nothing runs", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    code = Service(config, stop=stop).run()
    stop.set()
    if rules_thread is not None:
        rules_thread.join(timeout=30)
    return code


def _start_rules(config: Any, stop: threading.Event, log: logging.Logger) -> threading.Thread:
    """Run the alert rules in this worker, on their own thread and schedule.

    The rule engine reads its inputs (status, daily features) back from
    InfluxDB, like the feature jobs, so it sees every participant whichever
    worker stored their data. With a ``[notify]`` table the workers share a
    lease and exactly one runs the rules (processing.notify.leader); without
    it, enable the rules on one worker only, or alerts repeat.
    """
    from processing.notify.leader import run_rules
    from processing.notify.settings import check_recipients
    from processing.rules.loader import load_rules

    rules = load_rules(config.rules.directory)
    check_recipients(config.notify, recipients_of(rules))

    def run() -> None:
        try:
            run_rules(
                config,
                rules,
                interval_s=config.rules.interval_s,
                lookback_s=config.rules.lookback_s,
                stop=stop,
            )
        except Exception:
            log.exception("the rules runner failed; processing continues without alerts")

    thread = threading.Thread(target=run, name="wellsense-rules", daemon=True)
    thread.start()
    return thread


def recipients_of(rules: Any) -> dict[str, list[str]]:
    """Recipient name -> the ids of the rules that notify it."""
    out: dict[str, list[str]] = {}
    for rule in rules:
        for name in rule.notify:
            out.setdefault(name, []).append(rule.id)
    return out
