"""The gateway collector service: sensors -> batches -> outbox -> broker.

One asyncio loop runs the BLE device manager and the consumer that parses
and batches; the publisher drains the outbox on its own thread. Stopping
(SIGTERM/SIGINT) commits every open batch before it disconnects, so an
orderly shutdown loses nothing; open batches are also journaled after each
group of samples (:mod:`collector.batcher`), so a SIGKILL loses nothing
either.

Supervision: the systemd watchdog is pinged from the loop only while the
publisher is healthy too; if the publisher dies (an SQLite error, a full
disk) the service stops with :class:`PublisherFailedError` and the command
exits non-zero, so systemd restarts it. With ``[minimise] enabled`` raw batches go to
the local raw store instead and only window features are published
(:mod:`collector.minimise`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

from collector import ble, sdnotify, wire
from collector.batcher import Batcher, Route
from collector.beats import MAX_LATENCY_NS
from collector.ble_recover import release_stale_connections
from collector.clock_quality import simulated_clock_quality, system_clock_quality
from collector.commands import CommandHandler, WithdrawalStore, participant_prefixes
from collector.config import CollectorConfig, SensorConfig
from collector.ingest import Ingest
from collector.minimise import Minimiser
from collector.outbox import Outbox
from collector.publisher import Publisher
from collector.rawstore import RawStore

log = logging.getLogger(__name__)

ENV_SIM_EPOCH = "WELLSENSE_SIM_EPOCH_NS"


def _clocks() -> tuple[Callable[[], int], Callable[[], wire.ClockQuality]]:
    """The sample clock: wall time, or the demo's compressed simulation clock."""
    import os

    if ENV_SIM_EPOCH not in os.environ:
        return time.time_ns, system_clock_quality
    epoch = int(os.environ[ENV_SIM_EPOCH])
    scale = float(os.environ.get("WELLSENSE_SIM_TIME_SCALE", "1"))
    anchor = int(os.environ.get("WELLSENSE_SIM_ANCHOR_NS", str(epoch)))
    log.warning("using the simulation clock (x%g): for demos and tests only", scale)
    return ble.sim_clock_ns(epoch, scale, anchor), simulated_clock_quality


class PublisherFailedError(RuntimeError):
    """The publisher thread died; the collector stops so that systemd restarts it."""


def _beat_latency_ns() -> int:
    """The beat clocks' latency bound on the sample clock (stretched by a sim time scale)."""
    import os

    if ENV_SIM_EPOCH not in os.environ:
        return MAX_LATENCY_NS
    scale = float(os.environ.get("WELLSENSE_SIM_TIME_SCALE", "1"))
    return round(MAX_LATENCY_NS * max(1.0, scale))


def sensor_specs(sensors: tuple[SensorConfig, ...]) -> list[ble.SensorSpec]:
    return [
        ble.SensorSpec(
            s.key,
            address=s.address,
            name_pattern=s.name_pattern,
            service_uuid=s.service_uuid,
            profile=s.profile,
        )
        for s in sensors
    ]


class CollectorService:
    """Wires the device manager, ingest, batcher, outbox and publisher together."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.now_ns, clock_quality = _clocks()
        self.started = time.monotonic()
        self.outbox = Outbox(config.outbox_path, max_bytes=config.outbox_max_bytes)
        # Withdrawn participants stay off across restarts (collector/commands.py).
        self.flags = WithdrawalStore(config.data_dir)
        flags = self.flags.load()
        self.active = tuple(s for s in config.sensors if s.participant not in flags)
        erased = [p for p, r in flags.items() if r.erase]
        self.outbox.purge(participant_prefixes(config.study, erased))
        self.raw_store: RawStore | None = None
        if config.minimise.enabled:
            self.raw_store = RawStore(
                config.raw_store_path,
                keep_raw_days=config.minimise.keep_raw_days,
                clock=self.now_ns,
            )
            for participant in erased:
                self.raw_store.erase_participant(participant)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.publisher = Publisher(
            settings=config.mqtt,
            outbox=self.outbox,
            study=config.study,
            gateway=config.gateway,
            max_inflight=config.max_inflight,
            max_unconfirmed=config.delivery.max_unconfirmed,
            confirm_timeout_s=config.delivery.confirm_timeout_s,
            confirm_timeout_max_s=config.delivery.confirm_timeout_max_s,
        )
        self.publisher.command_handler = CommandHandler(
            study=config.study,
            gateway=config.gateway,
            store=self.flags,
            outbox=self.outbox,
            on_withdraw=self._withdraw_from_thread,
            acknowledge=self.publisher.acknowledge,
            raw_store=self.raw_store,
        )
        self.batcher = Batcher(
            outbox=self.outbox,
            study=config.study,
            gateway=config.gateway,
            clock_quality=clock_quality,
            wall_ns=self.now_ns,
            max_samples=config.batch.max_samples,
            max_interval_s=config.batch.max_interval_s,
            on_commit=self.publisher.wake,
        )
        self.routes = {s.key: Route(s.participant, s.device) for s in self.active}
        self.ingest = Ingest(
            self.batcher, self.routes, now_ns=self.now_ns, beat_latency_ns=_beat_latency_ns()
        )
        self.minimiser: Minimiser | None = None
        if self.raw_store is not None:
            self.minimiser = Minimiser(
                store=self.raw_store,
                batcher=self.batcher,
                routes=self.routes,
                window_s=config.minimise.window_s,
                now_ns=self.now_ns,
            )
            self.batcher.raw_sink = self.minimiser.keep
        # After the withdrawal purge above: an erased participant's samples are gone.
        self.batcher.recover()
        self.health_route = Route(None, config.gateway)
        self.manager = self._manager()

    def _manager(self) -> ble.DeviceManager:
        b = self.config.ble
        return ble.DeviceManager(
            sensor_specs(self.active),
            clock_ns=self.now_ns,
            options=ble.ManagerOptions(
                scan_timeout_s=b.scan_timeout_s,
                battery_interval_s=b.battery_interval_s,
                backoff_base_s=b.reconnect_min_s,
                backoff_cap_s=b.reconnect_max_s,
                adapter=b.adapter,
            ),
        )

    def _withdraw_from_thread(self, participants: frozenset[str]) -> None:
        """Called on the publisher's thread: stop those sensors on the loop, and wait."""
        if self._loop is None:
            return  # not running yet: the flag alone keeps them off at start
        future = asyncio.run_coroutine_threadsafe(self.withdraw(participants), self._loop)
        future.result(timeout=60)

    async def withdraw(self, participants: frozenset[str]) -> None:
        """Stop collecting for ``participants`` now: sensors off, open batches dropped."""
        keys = {s.key for s in self.active if s.participant in participants}
        if not keys:
            return
        self.active = tuple(s for s in self.active if s.key not in keys)
        for key in keys:  # unroute first: nothing more of theirs reaches a batch
            self.routes.pop(key, None)
            self.ingest.sensors.pop(key, None)
        old = self.manager
        self.manager = self._manager()
        await old.stop()
        while not old.queue.empty():
            item = old.queue.get_nowait()
            if item.sensor_key not in keys:
                self.ingest.handle(item)
        dropped = self.batcher.discard(participants)
        self.manager.start()
        log.info("collection stopped", extra={"sensors": sorted(keys), "batches_dropped": dropped})

    def health_sample(self) -> wire.HealthSample:
        stats = self.outbox.stats()
        return wire.HealthSample(
            ts_ns=self.now_ns(),
            uptime_s=round(time.monotonic() - self.started, 3),
            outbox_depth=stats.depth,
            outbox_oldest_age_s=stats.oldest_age_s,
            outbox_evicted=stats.evicted,
            sensors_connected=sum(s.connected for s in self.ingest.sensors.values()),
            sensors=self.ingest.health_sensors(),
        )

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self.publisher.start()
        await release_stale_connections(sensor_specs(self.active))
        self.manager.start()
        next_health = time.monotonic()
        watchdog_s = sdnotify.watchdog_interval_s()
        next_watchdog = time.monotonic()
        sync_s = self.config.delivery.journal_sync_s
        next_sync = time.monotonic() + sync_s
        sdnotify.notify("READY=1")
        try:
            while not stop.is_set():
                if self.publisher.failure is not None:
                    raise PublisherFailedError(
                        f"the publisher stopped: {type(self.publisher.failure).__name__}: "
                        f"{self.publisher.failure}"
                    ) from self.publisher.failure
                if (
                    watchdog_s is not None
                    and time.monotonic() >= next_watchdog
                    and self.publisher.healthy()
                ):
                    # From the loop itself, and only while the publisher turns too:
                    # a wedged loop or a stuck publisher stops the pings.
                    sdnotify.notify("WATCHDOG=1")
                    next_watchdog = time.monotonic() + watchdog_s
                with contextlib.suppress(TimeoutError):
                    item = await asyncio.wait_for(self.manager.queue.get(), timeout=0.25)
                    self.ingest.handle(item)
                    # Drain what is already queued without waking the loop each time.
                    while not self.manager.queue.empty():
                        self.ingest.handle(self.manager.queue.get_nowait())
                # Journal the group before anything else: a SIGKILL from here on
                # loses none of these samples.
                self.batcher.journal_flush()
                if time.monotonic() >= next_sync:
                    self.outbox.sync()
                    next_sync = time.monotonic() + sync_s
                self.batcher.flush_due()
                if self.minimiser is not None:
                    self.minimiser.tick()
                if time.monotonic() >= next_health:
                    next_health = time.monotonic() + self.config.health_interval_s
                    self.batcher.add(self.health_route, "health", self.health_sample())
                    self._log_summary()
        finally:
            sdnotify.notify("STOPPING=1")
            await self.manager.stop()
            failed = self.publisher.failure is not None
            try:
                while not self.manager.queue.empty():
                    self.ingest.handle(self.manager.queue.get_nowait())
                self.batcher.flush_all()
            except Exception:
                # The outbox is failing too (a full disk, say): what is journaled
                # is recovered at the next start; the rest cannot be kept.
                log.exception("could not commit the open batches while stopping")
                failed = True
            drained = False
            if not failed:
                drained = await asyncio.to_thread(self.publisher.drain, 5.0)
            self.publisher.stop()
            depth = None
            with contextlib.suppress(Exception):
                depth = self.outbox.stats().depth
            self.outbox.close()
            if self.raw_store is not None:
                self.raw_store.close()
            log.info("collector stopped", extra={"outbox_depth": depth, "drained": drained})

    def _log_summary(self) -> None:
        stats = self.outbox.stats()
        c = self.publisher.counters
        log.info(
            "collector health",
            extra={
                "sensors": {
                    k: {
                        "connected": s.connected,
                        "samples": s.samples,
                        "parse_errors": s.parse_errors,
                        "battery_pct": s.battery_pct,
                    }
                    for k, s in self.ingest.sensors.items()
                },
                "outbox_depth": stats.depth,
                "outbox_evicted": stats.evicted,
                "outbox_sent": stats.sent,
                "published": c.published,
                "acked": c.acked,
                "confirmed": c.confirmed,
                "confirmed_dead": c.confirmed_dead,
                "resent": c.resent,
                "broker_connected": self.publisher.connected,
                **self._minimise_summary(),
            },
        )

    def _minimise_summary(self) -> dict[str, object]:
        if self.raw_store is None:
            return {}
        raw = self.raw_store.stats()
        return {"raw_rows": raw.rows, "raw_counters": raw.counters}


async def serve(config: CollectorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = CollectorService(config)
    log.info(
        "collector starting",
        extra={
            "gateway": config.gateway,
            "study": config.study,
            "sensors": [s.key for s in service.active],
            "withdrawn_sensors": [s.key for s in config.sensors if s not in service.active],
            "minimise": config.minimise.enabled,
        },
    )
    await service.run(stop)
