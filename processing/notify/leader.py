"""One rules runner per study: a lease in the outbox's SQLite file, and delivery.

Every worker with ``[rules] enabled`` runs :func:`run_rules`. With a
``[notify]`` table, it first waits for the study's lease
(:meth:`Outbox.acquire`); the holder renews it every ``lease_s / 3`` on its
own thread, runs the rules runner and the dispatcher, and stops both as soon
as a renewal fails. A worker killed with SIGKILL stops renewing; another
takes the lease once it has expired (at most ``lease_s`` later) and marks
what the dead one was sending as interrupted. Every enqueue is fenced by
the holder and the lease epoch, and the queue's unique key drops an event
seen twice, so an event reaches each recipient at most once.

Without ``[notify]`` the runner runs unleased, as before (one worker only).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from processing import schema
from processing.notify.dispatch import Dispatcher, due_ns
from processing.notify.outbox import Delivery, LeaseLost, Outbox, target_id
from processing.notify.settings import NotifyConfig

log = logging.getLogger("wellsense.notify")

DISPATCH_EVERY_S = 1.0


def holder_id(worker: str) -> str:
    """Unique per process: two workers never share a lease holder id."""
    return f"{worker}@{socket.gethostname()}:{os.getpid()}"


class Enqueuer:
    """The engine's delivery hook: queues an event for each recipient (fenced by the lease)."""

    def __init__(
        self,
        outbox: Outbox,
        config: NotifyConfig,
        *,
        holder: str,
        epoch: int,
        timezone: str,
        on_lost: Callable[[], None],
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.holder = holder
        self.epoch = epoch
        self.timezone = timezone
        self.on_lost = on_lost
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        payload = event.to_json()
        now = self.outbox.clock()
        rows: list[tuple[str, str, bool, int]] = []
        for name in event.notify:
            recipient = self.config.recipients.get(name)
            if recipient is None:  # checked at start; a rule file changed under us
                log.error("alert recipient not configured", extra={"fields": {"recipient": name}})
                continue
            due = due_ns(recipient, now, self.timezone)
            digest = recipient.digest_at is not None
            rows.extend((name, target_id(u), digest, due) for u in recipient.urls)
        try:
            with self.lock:
                self.outbox.enqueue(payload, rows, holder=self.holder, epoch=self.epoch)
        except LeaseLost:
            self.on_lost()
            raise

    def restore(self, engine: Any, study: str) -> int:
        """Teach ``engine`` the newest queued event of each rule and subject."""
        from processing.rules.engine import FIRING, Subject

        n = 0
        with self.lock:
            events = self.outbox.last_events(study)
        for e in events:
            subject = Subject(
                e.get("scope", "participant"),
                participant=e.get("participant", ""),
                device=e.get("device", ""),
                gateway=e.get("gateway", ""),
            )
            firing = e["state"] == FIRING
            fired = int(e["ts_ns"] if firing else e.get("since_ns", e["ts_ns"]))
            engine.restore(e["rule"], subject, firing=firing, fired_ns=fired)
            n += 1
        return n


def delivery_line(d: Delivery, status: str, error: str) -> str:
    """``alert_delivery`` point at the alert event's time (docs/storage.md)."""
    e = d.event
    tags = {
        "study": d.study,
        "participant": e.get("participant", ""),
        "device": e.get("device", ""),
        "gateway": e.get("gateway", ""),
        "rule": d.rule,
        "recipient": d.recipient,
        "target": d.target,
    }
    fields: dict[str, schema.FieldValue | None] = {
        "state": d.state,
        "status": status,
        "attempts": d.attempts,
        "error": error or None,
    }
    text = schema.line("alert_delivery", tags, fields, d.event_ns)
    assert text is not None
    return text


def run_rules(
    config: Any,
    rules: Any,
    *,
    interval_s: float,
    lookback_s: float,
    stop: threading.Event,
    once: bool = False,
    clock: Callable[[], int] | None = None,
) -> int:
    """The rules runner of one worker: leased and delivering with ``[notify]``."""
    from processing.rules.runner import serve

    notify: NotifyConfig | None = getattr(config, "notify", None)
    if notify is None:
        return serve(
            config,
            rules,
            interval_s=interval_s,
            lookback_s=lookback_s,
            stop=stop,
            once=once,
            clock=clock,
        )
    holder = holder_id(config.worker)
    outbox = Outbox(notify.database)
    try:
        while not stop.is_set():
            epoch = outbox.acquire(config.study, holder, notify.lease_s)
            if epoch is None:
                stop.wait(notify.lease_s / 3)
                continue
            fields = {"study": config.study, "epoch": epoch}
            log.info("rules lease acquired", extra={"fields": fields})
            code = _lead(
                config,
                rules,
                notify,
                holder,
                epoch,
                outbox,
                stop,
                interval_s,
                lookback_s,
                once,
                clock,
            )
            if once:
                outbox.release(config.study, holder)
                return code
        outbox.release(config.study, holder)
        return 0
    finally:
        outbox.close()


def _lead(
    config: Any,
    rules: Any,
    notify: NotifyConfig,
    holder: str,
    epoch: int,
    outbox: Outbox,
    stop: threading.Event,
    interval_s: float,
    lookback_s: float,
    once: bool,
    clock: Callable[[], int] | None,
) -> int:
    from processing.rules.runner import serve
    from processing.writer import InfluxWriter

    lost = threading.Event()
    term = threading.Event()  # stops this term's runner, heartbeat and dispatcher

    def on_lost() -> None:
        if not lost.is_set():
            log.warning("rules lease lost; this worker stops running the rules")
        lost.set()
        term.set()

    def watch() -> None:
        stop.wait()
        term.set()

    threading.Thread(target=watch, name="wellsense-lease-watch", daemon=True).start()

    def heartbeat() -> None:
        beat = Outbox(notify.database)
        try:
            while not term.wait(notify.lease_s / 3):
                try:
                    if beat.acquire(config.study, holder, notify.lease_s) != epoch:
                        on_lost()
                except Exception:
                    log.exception("lease renewal failed")
        finally:
            beat.close()

    def dispatch() -> None:
        box = Outbox(notify.database)
        writer = InfluxWriter.for_config(config.influx, stop=term)
        sender = Dispatcher(
            box,
            notify,
            study=config.study,
            holder=holder,
            report=lambda d, status, error: writer.write([delivery_line(d, status, error)]),
        )
        try:
            while True:
                try:
                    sender.run_once(epoch)
                except LeaseLost:
                    on_lost()
                except Exception:
                    log.exception("alert dispatch failed")
                if term.wait(DISPATCH_EVERY_S):
                    break
            if once and not lost.is_set():
                sender.run_once(epoch)  # what the single evaluation queued
        finally:
            writer.close()
            box.close()

    enqueue = Enqueuer(
        outbox,
        notify,
        holder=holder,
        epoch=epoch,
        timezone=config.features.timezone,
        on_lost=on_lost,
    )
    threads = [
        threading.Thread(target=heartbeat, name="wellsense-lease", daemon=True),
        threading.Thread(target=dispatch, name="wellsense-notify", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        return serve(
            config,
            rules,
            interval_s=interval_s,
            lookback_s=lookback_s,
            stop=term,
            once=once,
            clock=clock,
            deliver=enqueue,
        )
    finally:
        term.set()
        for t in threads:
            t.join(30)
