"""The gateway collector service: sensors -> batches -> outbox -> broker.

One asyncio loop runs the BLE device manager and the consumer that parses
and batches; the publisher drains the outbox on its own thread. Stopping
(SIGTERM/SIGINT) commits every open batch before it disconnects, so an
orderly shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

from collector import ble, wire
from collector.batcher import Batcher, Route
from collector.ble_recover import release_stale_connections
from collector.clock_quality import simulated_clock_quality, system_clock_quality
from collector.config import CollectorConfig
from collector.ingest import Ingest
from collector.outbox import Outbox
from collector.publisher import Publisher

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


def sensor_specs(config: CollectorConfig) -> list[ble.SensorSpec]:
    return [
        ble.SensorSpec(
            s.key, address=s.address, name_pattern=s.name_pattern, service_uuid=s.service_uuid
        )
        for s in config.sensors
    ]


class CollectorService:
    """Wires the device manager, ingest, batcher, outbox and publisher together."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.now_ns, clock_quality = _clocks()
        self.started = time.monotonic()
        self.outbox = Outbox(config.outbox_path, max_bytes=config.outbox_max_bytes)
        self.publisher = Publisher(
            settings=config.mqtt,
            outbox=self.outbox,
            study=config.study,
            gateway=config.gateway,
            max_inflight=config.max_inflight,
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
        routes = {s.key: Route(s.participant, s.device) for s in config.sensors}
        self.ingest = Ingest(self.batcher, routes, now_ns=self.now_ns)
        self.health_route = Route(None, config.gateway)
        b = config.ble
        self.manager = ble.DeviceManager(
            sensor_specs(config),
            clock_ns=self.now_ns,
            options=ble.ManagerOptions(
                scan_timeout_s=b.scan_timeout_s,
                battery_interval_s=b.battery_interval_s,
                backoff_base_s=b.reconnect_min_s,
                backoff_cap_s=b.reconnect_max_s,
                adapter=b.adapter,
            ),
        )

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
        self.publisher.start()
        await release_stale_connections(sensor_specs(self.config))
        self.manager.start()
        next_health = time.monotonic()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    item = await asyncio.wait_for(self.manager.queue.get(), timeout=0.25)
                    self.ingest.handle(item)
                    # Drain what is already queued without waking the loop each time.
                    while not self.manager.queue.empty():
                        self.ingest.handle(self.manager.queue.get_nowait())
                self.batcher.flush_due()
                if time.monotonic() >= next_health:
                    next_health = time.monotonic() + self.config.health_interval_s
                    self.batcher.add(self.health_route, "health", self.health_sample())
                    self._log_summary()
        finally:
            await self.manager.stop()
            while not self.manager.queue.empty():
                self.ingest.handle(self.manager.queue.get_nowait())
            self.batcher.flush_all()
            drained = await asyncio.to_thread(self.publisher.drain, 5.0)
            self.publisher.stop()
            depth = self.outbox.stats().depth
            self.outbox.close()
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
                "published": c.published,
                "acked": c.acked,
                "broker_connected": self.publisher.connected,
            },
        )


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
            "sensors": [s.key for s in config.sensors],
        },
    )
    await service.run(stop)
