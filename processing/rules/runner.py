"""``wellsense rules run``: evaluate the rules on InfluxDB data on a schedule.

A standalone process next to the processing service. Every ``interval`` it
reads the status of every participant, device and gateway of the study from
InfluxDB (:mod:`processing.rules.influx_source`), feeds it to a
:class:`~processing.rules.engine.RuleEngine` and ticks it; every
``daily_every`` it also reloads the complete days' features. Alerts are
published on MQTT (QoS 1; the retained state per participant or gateway) and
written to InfluxDB (measurement ``alert``) with the processing service's own
writer, which retries transient errors.

It reads the processing service's configuration file (study, MQTT,
InfluxDB), connecting with its own client id (``<client_id>-rules``). On
start it restores the open alerts and their last firing times from the
``alert`` measurement, so a restart neither repeats nor forgets an alert.

With a ``[notify]`` table, :func:`processing.notify.leader.run_rules` wraps
:func:`serve`: one runner per study (a lease) and delivery to the rules'
recipients (``deliver``).

When ``WELLSENSE_SIM_EPOCH_NS`` is set (the demo and the tests), it runs on
the emulator's compressed clock like the collector does.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from processing.rules.engine import NS, AlertEvent, RuleEngine
from processing.rules.errors import RuleSetError
from processing.rules.loader import RuleSet, load_rules, parse_duration
from processing.tombstones import Tombstones
from wellsense_cli import conventions

log = logging.getLogger("wellsense.rules")

EXIT_OK: Final = conventions.EXIT_OK
EXIT_RULES: Final = conventions.EXIT_FAILURE
EXIT_CONFIG: Final = conventions.EXIT_USAGE
DAILY_EVERY_S: Final = 900.0
PUBLISH_WAIT_S: Final = 10.0


def clock_from_env(environ: dict[str, str] | None = None) -> Callable[[], int]:
    """Wall time, or the simulation clock that ``WELLSENSE_SIM_*`` describe.

    Same formula as ``wellsense_sim.clock`` (and the collector): ``epoch +
    (wall_at_start - anchor) * scale + monotonic_elapsed * scale``.
    """
    env = os.environ if environ is None else environ
    if "WELLSENSE_SIM_EPOCH_NS" not in env:
        return time.time_ns
    epoch = int(env["WELLSENSE_SIM_EPOCH_NS"])
    scale = float(env.get("WELLSENSE_SIM_TIME_SCALE", "1"))
    anchor = int(env.get("WELLSENSE_SIM_ANCHOR_NS", str(epoch)))
    log.warning("using the simulation clock (x%g): for demos and tests only", scale)
    mono0 = time.monotonic_ns()
    base = epoch + (time.time_ns() - anchor) * scale

    def now_ns() -> int:
        return int(base + (time.monotonic_ns() - mono0) * scale)

    return now_ns


class MqttAlertSink:
    """Publishes events (QoS 1) and retained alert states on the study's alert topics."""

    def __init__(self, config: Any, *, client_id: str) -> None:
        from collector.mqtt import new_client

        s = config.mqtt
        rules: Any = getattr(config, "rules", None)
        username = getattr(rules, "mqtt_username", None)
        if username:
            # Its own account: the broker binds client ids to accounts.
            s = dataclasses.replace(s, username=username, password=rules.mqtt_password)
        self.study = config.study
        self.connected = threading.Event()
        client = new_client(s, client_id)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        client.loop_start()
        self.client = client
        self._pending: list[Any] = []

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the connection", extra={"fields": {"reason": str(rc)}})
            return
        self.connected.set()
        log.info("connected to broker")

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        self.connected.clear()

    def __call__(self, event: AlertEvent, state: dict[str, Any]) -> None:
        from collector import wire
        from processing.rules.sinks import event_payload, state_payload, state_topic

        infos = [
            self.client.publish(wire.alerts_topic(self.study), event_payload(event), qos=1),
            self.client.publish(
                state_topic(self.study, event.subject.owner),
                state_payload(state),
                qos=1,
                retain=True,
            ),
        ]
        for info in infos:
            # paho keeps a QoS 1 message while disconnected and sends it on reconnect
            info.wait_for_publish(PUBLISH_WAIT_S if self.connected.is_set() else 0.01)
        self._pending = [i for i in (*self._pending, *infos) if not i.is_published()]

    def close(self, timeout_s: float = PUBLISH_WAIT_S) -> None:
        """Wait (bounded) for unacknowledged publishes, then disconnect."""
        deadline = time.monotonic() + timeout_s
        if self._pending and self.connected.wait(timeout_s):
            for info in self._pending:
                info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        unsent = sum(1 for i in self._pending if not i.is_published())
        if unsent:
            log.warning("alerts not acknowledged by the broker", extra={"fields": {"n": unsent}})
        self.client.disconnect()
        self.client.loop_stop()


class Runner:
    """The evaluation loop; ``run()`` blocks until ``stop`` is set."""

    def __init__(
        self,
        *,
        engine: RuleEngine,
        source: Any,
        interval_s: float,
        stop: threading.Event,
        daily_every_s: float = DAILY_EVERY_S,
        erased: Tombstones | None = None,
    ) -> None:
        self.engine = engine
        self.erased = erased
        self.source = source
        self.interval_s = interval_s
        self.stop = stop
        self.daily_every_s = daily_every_s
        self._next_daily = 0.0

    def restore(self) -> int:
        stored = self.source.stored_alerts(self.engine.clock())
        for alert in stored:
            self.engine.restore(
                alert.rule, alert.subject, firing=alert.firing, fired_ns=alert.fired_ns
            )
        return sum(1 for a in stored if a.firing)

    def cycle(self) -> list[AlertEvent]:
        """One evaluation: status of everyone, a tick, and the daily features when due."""
        now = self.engine.clock()
        events: list[AlertEvent] = []
        erased = self._forget_erased()
        snapshot = self.source.status(now)
        for subject, values in snapshot.updates():
            if subject.participant not in erased:  # a write that raced the erasure
                events.extend(self.engine.on_status(subject, values))
        events.extend(self.engine.tick(now))
        if time.monotonic() >= self._next_daily:
            self._next_daily = time.monotonic() + self.daily_every_s
            days = self.source.daily(now, list(self.engine.rules))
            for participant, by_day in sorted(days.items()):
                if participant in erased:
                    continue
                self.engine.load_daily(participant, by_day)
                events.extend(self.engine.evaluate_daily(participant))
        return events

    def _forget_erased(self) -> Tombstones | frozenset[str]:
        """Forget every erased participant the engine still knows (tombstones)."""
        if self.erased is None:
            return frozenset()
        self.erased.refresh()
        for participant in sorted(self.engine.known_participants()):
            if participant in self.erased:
                self.engine.forget_participant(participant)
                log.info("alert state of an erased participant forgotten")
        return self.erased

    def run(self, *, once: bool = False) -> int:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                events = self.cycle()
            except Exception as exc:  # InfluxDB down: log, keep the state, try again
                log.warning(
                    "evaluation failed; retrying next interval",
                    extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:300]}},
                )
                events = []
            c = self.engine.counters
            log.info(
                "rules evaluated",
                extra={
                    "fields": {
                        "events": len(events),
                        "open": len(self.engine.open_alerts()),
                        "subjects": len(self.engine.subjects()),
                        "fired": c.fired,
                        "resolved": c.resolved,
                        "suppressed": c.suppressed,
                        "sink_errors": c.sink_errors,
                        "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    }
                },
            )
            if once:
                break
            self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        return EXIT_OK


def run_cli(args: argparse.Namespace, *, prog: str) -> int:
    """``wellsense rules run`` (see :mod:`processing.rules.cli`)."""
    import sys

    from processing.cli import configure_logging
    from processing.config import ConfigError, load

    configure_logging(args.log_level)
    try:
        interval_s = parse_duration(args.interval)
        lookback_s = parse_duration(args.lookback)
    except ValueError as exc:
        print(f"{prog} run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if interval_s <= 0 or lookback_s < 86400:
        print(f"{prog} run: --interval must be > 0 and --lookback >= 1d", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"{prog} run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        rules: RuleSet = load_rules(args.rules)
    except RuleSetError as exc:
        for problem in exc.errors:
            print(problem.render(), file=sys.stderr)
        print(f"{prog} run: {len(exc.errors)} errors in the rules; nothing runs", file=sys.stderr)
        return EXIT_RULES
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from processing.cli import recipients_of
    from processing.notify.leader import run_rules
    from processing.notify.settings import check_recipients

    try:
        check_recipients(config.notify, recipients_of(rules))
    except ConfigError as exc:
        print(f"{prog} run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return run_rules(
        config, rules, interval_s=interval_s, lookback_s=lookback_s, stop=stop, once=args.once
    )


def serve(
    config: Any,
    rules: RuleSet,
    *,
    interval_s: float,
    lookback_s: float,
    stop: threading.Event,
    once: bool = False,
    clock: Callable[[], int] | None = None,
    deliver: Any = None,
) -> int:
    """Run the loop with the processing config's MQTT and InfluxDB settings.

    ``deliver`` (a :class:`processing.notify.leader.Enqueuer`) queues each
    event for its recipients before it is written to InfluxDB, and on start
    restores the newest queued state of each alert.
    """
    from influxdb_client import InfluxDBClient

    from processing.rules.influx_source import InfluxSource
    from processing.rules.sinks import alert_line
    from processing.writer import InfluxWriter

    influx = config.influx
    writer = InfluxWriter.for_config(influx, stop=stop)
    sink = MqttAlertSink(config, client_id=f"{config.client_id}-rules"[:128])
    client = InfluxDBClient(
        url=influx.url, token=influx.token, org=influx.org, timeout=int(influx.timeout_s * 1000)
    )

    erased = Tombstones(config.erased_file, config.study)

    def write(event: AlertEvent) -> None:
        if event.subject.participant in erased:
            return  # erased meanwhile: neither delivered nor stored
        if deliver is not None:
            deliver(event)
        writer.write([alert_line(event)])

    engine = RuleEngine(
        rules,
        study=config.study,
        publish=sink,
        write=write,
        clock=clock or clock_from_env(),
    )
    source = InfluxSource(
        query_api=client.query_api(),
        org=influx.org,
        bucket=influx.bucket,
        study=config.study,
        lookback_ns=int(lookback_s * NS),
        timezone=config.features.timezone,
    )
    runner = Runner(engine=engine, source=source, interval_s=interval_s, stop=stop, erased=erased)
    if not sink.connected.wait(10):
        log.warning("broker not reachable yet; alerts are queued until it is")
    log.info(
        "rules runner started",
        extra={"fields": {"study": config.study, "rules": len(rules), "interval_s": interval_s}},
    )
    try:
        try:
            restored = runner.restore()
        except Exception as exc:
            log.warning(
                "could not restore alert states", extra={"fields": {"error": str(exc)[:300]}}
            )
            restored = 0
        if deliver is not None:
            deliver.restore(engine, config.study)
        log.info("alert states restored", extra={"fields": {"open": restored}})
        return runner.run(once=once)
    finally:
        sink.close()
        writer.close()
        client.close()
        log.info("rules runner stopped")
