"""The processing service: MQTT in, validated and de-duplicated points out, acked last.

Threads: paho's network thread only puts received messages on a queue; one
worker thread (the caller of :meth:`Service.run`) does everything else, so no
state is shared. The loop is

1. collect a batch: messages in receipt order until ``batch_max_points``
   points or ``batch_max_wait_ms`` after the first message;
2. validate each (``wire.decode``); invalid ones are dead-lettered, duplicates
   counted, the rest turned into line protocol (:mod:`processing.schema`);
3. write the batch (:mod:`processing.writer` retries transient errors in
   place; data InfluxDB rejects is isolated message by message);
4. only then acknowledge every message of the batch, in receipt order;
5. mark the touched feature windows dirty and compute the due ones
   (:mod:`processing.windows`, :mod:`processing.featurejobs`);
6. every ``stats_interval_s``: a JSON summary log line and a ``wellsense_self`` point.

Back-pressure: the CONNECT packet sets Receive Maximum to ``max_inflight``,
so the broker never has more unacknowledged messages out to us than that.
While InfluxDB is down, step 3 does not return, nothing is acked, and the
broker holds (and persists) the rest: memory stays bounded here.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector import wire
from collector.mqtt import new_client
from processing import deadletter, schema
from processing.config import ProcessingConfig
from processing.dedup import SeqTracker, Verdict
from processing.metrics import Metrics
from processing.windows import DayCalendar, DirtyUnits, Unit
from processing.writer import FatalWriteError, InfluxWriter, RejectedError, StoppedError

log = logging.getLogger("wellsense.processing")

EXIT_OK = 0
EXIT_INFLUX_AUTH = 3
DEADLETTER_WAIT_S = 10.0
FEATURE_BUDGET_S = 0.5  # per loop turn, so ingestion is never starved by features
SHUTDOWN_FEATURE_BUDGET_S = 20.0
_LOG_DEADLETTERS_PER_INTERVAL = 20


@dataclass(slots=True)
class _Pending:
    """One received message on its way to being acknowledged."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    lines: list[str] = field(default_factory=list)
    message: wire.Message | None = None
    deadletters: list[mqtt.MQTTMessageInfo] = field(default_factory=list)


class Service:
    """One worker. ``run()`` blocks until ``stop`` is set and returns an exit code.

    Args:
        config: the validated configuration.
        stop: set it to stop (SIGTERM/SIGINT handlers do).
        wall_ns, monotonic: clocks (injected for tests).
    """

    def __init__(
        self,
        config: ProcessingConfig,
        *,
        stop: threading.Event | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.wall_ns = wall_ns
        self.monotonic = monotonic
        self.metrics = Metrics(study=config.study, worker=config.worker)
        self.tracker = SeqTracker()
        self.connected = threading.Event()
        self._inbox: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
        self._deadletter_topic = wire.deadletter_topic(config.study)
        self._dl_logged = 0
        self._shared = config.shared_group is not None
        self.writer = InfluxWriter.for_config(
            config.influx, stop=self.stop, on_retry=self._on_retry
        )
        fc = config.features
        self.dirty = DirtyUnits(
            window_s=fc.hrv_window_s,
            settle_s=fc.settle_s,
            idle_s=fc.idle_s,
            calendar=DayCalendar(fc.timezone),
            monotonic=monotonic,
        )
        # One writer thread: at most one batch is written while the next is decoded.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wellsense-write")
        self._inflight: tuple[list[_Pending], Future[float], int] | None = None
        self._jobs: Any = None
        self._influx_client: Any = None
        self._caught_up = False
        self._catchup_retry_at = 0.0
        self._client = self._make_client()

    # -- MQTT ----------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.config.mqtt
        client = new_client(s, self.config.client_id, manual_ack=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Dead letters are our only publishes; the broker bounds what it sends us.
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, properties: Any = None
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the connection", extra={"fields": {"reason": str(rc)}})
            return
        session = bool(getattr(flags, "session_present", False))
        options = SubscribeOptions(qos=1)
        client.subscribe([(f, options) for f in self.config.topic_filters()])
        self.connected.set()
        log.info(
            "connected to broker",
            extra={"fields": {"session_present": session, "filters": self.config.topic_filters()}},
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, properties: Any = None
    ) -> None:
        self.connected.clear()
        if not self.stop.is_set():
            log.warning(
                "disconnected from broker; reconnecting", extra={"fields": {"reason": str(rc)}}
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(message)  # network thread: nothing else

    # -- lifecycle -------------------------------------------------------------------

    def run(self) -> int:
        """Connect, process until stopped, return an exit code (0, or 3 on 401/403/404)."""
        cfg = self.config
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = cfg.session_expiry_s
        props.ReceiveMaximum = cfg.max_inflight
        self._client.connect_async(
            cfg.mqtt.host,
            cfg.mqtt.port,
            keepalive=cfg.mqtt.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()
        log.info(
            "processing started",
            extra={
                "fields": {
                    "study": cfg.study,
                    "worker": cfg.worker,
                    "shared_group": cfg.shared_group,
                    "max_inflight": cfg.max_inflight,
                    "features": cfg.features.enabled,
                }
            },
        )
        code = EXIT_OK
        next_stats = self.monotonic() + cfg.stats_interval_s
        try:
            while not self.stop.is_set():
                batch = self._collect()
                # Batch k was being written while batch k+1 was decoded; finish k
                # (ack it) before starting k+1, so acks stay in receipt order.
                self._finish_inflight()
                if cfg.features.enabled:
                    self._catch_up()
                    self._run_features(self.dirty.due(), FEATURE_BUDGET_S)
                if self.monotonic() >= next_stats:
                    next_stats = self.monotonic() + cfg.stats_interval_s
                    self._stats()
                if batch:
                    self._start_write(batch)
            self._finish_inflight()
            if cfg.features.enabled:
                # Dirty units live in memory only: compute them before going away
                # (a crash loses them; see docs/processing.md, "Limits").
                deadline = self.monotonic() + SHUTDOWN_FEATURE_BUDGET_S
                while len(self.dirty) and self.monotonic() < deadline:
                    before = self.metrics.features_computed
                    self._run_features(self.dirty.drain(), deadline - self.monotonic())
                    if self.metrics.features_computed == before:
                        break  # InfluxDB unreachable: give up rather than spin
        except StoppedError:
            log.warning(
                "stopped while InfluxDB was unavailable; unacked messages will be redelivered"
            )
        except FatalWriteError as exc:
            log.critical(
                "InfluxDB refused to store data; stopping without acknowledging",
                extra={"fields": {"status": exc.status, "error": exc.message}},
            )
            code = EXIT_INFLUX_AUTH
        finally:
            if self._inflight is not None:
                self._inflight[1].cancel()  # unacked: the broker redelivers it
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._stats(final=True)
            self._client.disconnect()
            self._client.loop_stop()
            self.writer.close()
            if self._influx_client is not None:
                self._influx_client.close()
        log.info("processing stopped", extra={"fields": {"exit_code": code}})
        return code

    # -- the batch loop --------------------------------------------------------------

    def _collect(self) -> list[_Pending]:
        """Messages in receipt order, until the batch is full or due.

        A batch closes at ``batch_max_points``, ``batch_max_wait_ms`` after its
        first message, or as soon as the previous batch's write has finished:
        under load batches grow to match the write time, and when idle a
        message waits for at most one write.
        """
        cfg = self.config
        batch: list[_Pending] = []
        points = 0
        deadline: float | None = None
        while not self.stop.is_set():
            pending_write = self._inflight is not None
            if self._inflight is not None and self._inflight[1].done():
                break  # ack the written batch now; what we have goes next
            wait = 0.2 if deadline is None else deadline - self.monotonic()
            if wait <= 0:
                break
            try:
                message = self._inbox.get(timeout=min(wait, 0.005 if pending_write else 0.2))
            except queue.Empty:
                if deadline is None and not pending_write:
                    break  # idle: let features and stats run
                continue
            pending = self._prepare(message)
            batch.append(pending)
            points += len(pending.lines)
            if deadline is None:
                deadline = self.monotonic() + cfg.batch_max_wait_ms / 1000
            if points >= cfg.batch_max_points or len(batch) >= cfg.max_inflight:
                break
        held = len(self._inflight[0]) if self._inflight is not None else 0
        self.metrics.inflight = len(batch) + held + self._inbox.qsize()
        return batch

    def _prepare(self, msg: mqtt.MQTTMessage) -> _Pending:
        self.metrics.received += 1
        pending = _Pending(msg.mid, msg.qos, msg.topic, bytes(msg.payload))
        if msg.topic.endswith("/state") and "/_gateways/" in msg.topic:
            self._prepare_state(pending)
            return pending
        try:
            message = wire.decode(pending.payload, topic=msg.topic)
        except wire.WireError as exc:
            self._deadletter(pending, exc.reason, exc.field, str(exc))
            return pending
        key = f"gw:{message.device}" if message.stream == "health" else message.device
        seen = self.tracker.see(key, message.seq)
        if seen.verdict is Verdict.DUPLICATE:
            self.metrics.duplicates += 1
            return pending
        if seen.verdict is Verdict.LATE:
            self.metrics.late += 1
        if seen.gap and not self._shared:
            # With a shared subscription each worker sees only some numbers of a
            # device: local jumps are not gaps (see docs/processing.md).
            self.metrics.gaps += 1
            self.metrics.missing_seq += seen.gap
            log.warning(
                "sequence gap",
                extra={
                    "fields": {
                        "participant": message.participant,
                        "device": message.device,
                        "missing": seen.gap,
                        "seq": message.seq,
                    }
                },
            )
        pending.message = message
        pending.lines = schema.message_lines(message)
        return pending

    def _prepare_state(self, pending: _Pending) -> None:
        parts = pending.topic.split("/")
        try:
            if len(parts) != 6:
                raise wire.TopicError("topic", "not a gateway state topic")
            gateway = wire.check_id(parts[4], "gateway")
            study = wire.check_id(parts[2], "study")
            try:
                body = json.loads(pending.payload)
            except (UnicodeDecodeError, ValueError):
                raise wire.MalformedJsonError("", "state is not valid JSON") from None
            if not isinstance(body, dict):
                raise wire.FieldTypeError("message", "expected an object")
            state = body.get("state")
            ts_ns = body.get("ts_ns")
            if state not in ("online", "offline"):
                raise wire.FieldValueError("state", "expected 'online' or 'offline'")
            if isinstance(ts_ns, bool) or not isinstance(ts_ns, int) or ts_ns <= 0:
                raise wire.FieldTypeError("ts_ns", "expected an integer timestamp")
        except wire.WireError as exc:
            self._deadletter(pending, exc.reason, exc.field, str(exc))
            return
        pending.lines = [schema.gateway_state_line(study, gateway, state, ts_ns)]

    def _deadletter(self, pending: _Pending, reason: str, field_name: str, error: str) -> None:
        body = deadletter.record(
            reason=reason,
            field=field_name,
            error=error,
            topic=pending.topic,
            payload=pending.payload,
            worker=self.config.worker,
            received_ns=self.wall_ns(),
        )
        pending.deadletters.append(self._client.publish(self._deadletter_topic, body, qos=1))
        pending.lines = []
        self.metrics.dead_lettered[reason] += 1
        if self._dl_logged < _LOG_DEADLETTERS_PER_INTERVAL:
            self._dl_logged += 1
            # The topic holds only pseudonyms; the payload is never logged.
            log.warning(
                "dead-lettered a message",
                extra={
                    "fields": {"reason": reason, "field": field_name, "topic": pending.topic[:200]}
                },
            )

    def _start_write(self, batch: list[_Pending]) -> None:
        """Write ``batch`` on the writer thread; the worker goes on decoding meanwhile."""
        lines = [text for p in batch for text in p.lines]
        self._inflight = (batch, self._executor.submit(self._timed_write, lines), len(lines))

    def _timed_write(self, lines: list[str]) -> float:
        started = time.monotonic()
        self.writer.write(lines)
        return time.monotonic() - started

    def _finish_inflight(self) -> None:
        """Wait for the batch being written, then acknowledge it (or raise)."""
        if self._inflight is None:
            return
        batch, future, n_lines = self._inflight
        self._inflight = None
        try:
            self.metrics.observe_write(future.result())
        except RejectedError as exc:
            # Nothing else is being written now: the writer is ours alone again.
            log.warning(
                "InfluxDB rejected a batch; isolating the bad messages",
                extra={"fields": {"status": exc.status, "error": exc.message}},
            )
            self._isolate(batch)
        self._await_deadletters(batch)
        written_ns = self.wall_ns()
        for p in batch:
            self._client.ack(p.mid, p.qos)
        self._after_write(batch, written_ns, n_lines)

    def _isolate(self, batch: list[_Pending]) -> None:
        for p in batch:
            if not p.lines:
                continue
            try:
                self.writer.write(p.lines)
            except RejectedError as exc:
                self._deadletter(
                    p, deadletter.INFLUX_REJECTED, "", f"HTTP {exc.status}: {exc.message}"
                )
                p.message = None

    def _await_deadletters(self, batch: list[_Pending]) -> None:
        # A message is acked only once its dead letter reached the broker (while
        # we are connected; if not, the ack cannot be sent either).
        deadline = self.monotonic() + DEADLETTER_WAIT_S
        for p in batch:
            for info in p.deadletters:
                while not info.is_published() and self.monotonic() < deadline:
                    if self.stop.wait(0.01):
                        raise StoppedError(0, "stopping while dead letters were in flight")

    def _after_write(self, batch: list[_Pending], written_ns: int, points: int) -> None:
        m = self.metrics
        m.points_written += points
        m.retries = self.writer.counters.retries
        m.splits = self.writer.counters.splits
        features = self.config.features.enabled
        for p in batch:
            if p.lines:
                m.messages_written += 1
            message = p.message
            if message is None:
                continue
            m.samples_written += len(message.samples)
            newest = max(s.ts_ns for s in message.samples)
            m.observe_lag((written_ns - newest) / 1e9)
            if (
                features
                and message.participant is not None
                and message.stream in ("hr", "activity")
            ):
                beats: list[int] = []
                if message.stream == "hr":
                    for s in message.samples:
                        assert isinstance(s, wire.HrSample)
                        if s.rr_ms:
                            beats.extend(schema.hr_beat_times_ns(s))
                self.dirty.mark(message.participant, beats, (s.ts_ns for s in message.samples))

    def _on_retry(self, status: int, delay_s: float, message: str) -> None:
        # Runs on the writer thread: log only; the counter is read from the writer.
        log.warning(
            "InfluxDB write failed; retrying without acknowledging",
            extra={"fields": {"status": status, "retry_in_s": round(delay_s, 2), "error": message}},
        )

    # -- features --------------------------------------------------------------------

    def _feature_jobs(self) -> Any:
        if self._jobs is None:
            # Imported here: the ingest path must not pay for NumPy/SciPy/Flux set-up.
            from influxdb_client import InfluxDBClient

            from processing.featurejobs import FeatureJobs

            influx = self.config.influx
            self._influx_client = InfluxDBClient(
                url=influx.url,
                token=influx.token,
                org=influx.org,
                timeout=int(influx.timeout_s * 1000),
            )
            self._jobs = FeatureJobs(
                query_api=self._influx_client.query_api(),
                org=influx.org,
                bucket=influx.bucket,
                study=self.config.study,
                window_s=self.config.features.hrv_window_s,
                timezone=self.config.features.timezone,
            )
        return self._jobs

    def _catch_up(self) -> None:
        """Once after start: mark the units of the last ``catchup_h`` hours with raw data.

        Dirty units live in memory, so after a crash the units of data that was
        already acknowledged would wait for new data; recomputing is idempotent,
        so marking them again is safe. Retried every ``stats_interval_s`` until
        the query succeeds.
        """
        hours = self.config.features.catchup_h
        if self._caught_up or hours <= 0 or self.monotonic() < self._catchup_retry_at:
            return
        now = self.wall_ns()
        try:
            recent = self._feature_jobs().recent(now - int(hours * 3600e9), now + 60 * 10**9)
        except Exception as exc:  # InfluxDB not ready: ingestion goes on, try later
            self._catchup_retry_at = self.monotonic() + self.config.stats_interval_s
            log.warning(
                "feature catch-up query failed; will retry",
                extra={"fields": {"error": str(exc)[:300]}},
            )
            return
        self._caught_up = True
        for participant, (windows, hours_with_samples) in sorted(recent.items()):
            self.dirty.mark(participant, windows, hours_with_samples)
        log.info(
            "feature catch-up",
            extra={
                "fields": {"participants": len(recent), "units": len(self.dirty), "hours": hours}
            },
        )

    def _run_features(self, units: list[Unit], budget_s: float) -> None:
        if not units:
            return
        jobs = self._feature_jobs()
        deadline = self.monotonic() + budget_s
        for i, unit in enumerate(units):
            if self.monotonic() > deadline:
                for rest in units[i:]:
                    self.dirty.remark(rest)
                return
            try:
                followups = self._run_unit(jobs, unit)
            except (StoppedError, FatalWriteError):
                raise
            except Exception as exc:  # a query failure must not stop ingestion
                log.warning(
                    "feature computation failed; will retry",
                    extra={
                        "fields": {
                            "kind": unit.kind,
                            "participant": unit.participant,
                            "error": str(exc)[:300],
                        }
                    },
                )
                for rest in units[i:]:
                    self.dirty.remark(rest)
                return
            # Units that read this one's result (a window's day, later days'
            # baselines); those still queued in this turn run after it anyway.
            queued = set(units[i + 1 :])
            for dependent in followups:
                if dependent not in queued:
                    self.dirty.remark(dependent)

    def _run_unit(self, jobs: Any, unit: Unit) -> list[Unit]:
        result = jobs.compute(unit)
        if result.lines:
            self._replace_point(unit, result.lines)
        self.metrics.features_computed += 1
        if self._shared and jobs.fingerprint(unit) != result.fingerprint:
            # Another worker wrote input for this unit while we computed: do it again.
            self.dirty.remark(unit)
        return list(result.followups)

    def _replace_point(self, unit: Unit, lines: list[str]) -> None:
        """Write a unit's result; fields that became undefined must not linger."""
        from processing.featurejobs import rfc3339, stale_fields_possible

        if stale_fields_possible(unit, lines[0]):
            measurement = "hrv_window" if unit.kind == "hrv" else "daily"
            self._influx_client.delete_api().delete(
                start=rfc3339(unit.start_ns),
                stop=rfc3339(unit.start_ns + 1),
                predicate=(
                    f'_measurement="{measurement}" AND study="{self.config.study}"'
                    f' AND participant="{unit.participant}"'
                ),
                bucket=self.config.influx.bucket,
                org=self.config.influx.org,
            )
        try:
            self.writer.write(lines)
        except RejectedError as exc:
            log.error(
                "InfluxDB rejected a feature point",
                extra={
                    "fields": {
                        "kind": unit.kind,
                        "participant": unit.participant,
                        "error": exc.message,
                    }
                },
            )

    # -- self-metrics ----------------------------------------------------------------

    def _stats(self, *, final: bool = False) -> None:
        self.metrics.retries = self.writer.counters.retries
        values = self.metrics.snapshot()
        self._dl_logged = 0
        log.info("stats", extra={"fields": {"final": final, **values}})
        text = self.metrics.line(values, self.wall_ns())
        if text is None or final:
            return
        try:
            self.writer.write([text])
        except RejectedError as exc:
            log.error(
                "InfluxDB rejected the self-metrics point", extra={"fields": {"error": exc.message}}
            )
