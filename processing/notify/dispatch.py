"""Send what the outbox holds with Apprise; record each outcome.

One message per alert event and recipient target, or, for a recipient with
a ``digest`` time, one message a day listing every event queued since the
last one. A failed send is retried after ``backoff_s * 2**(attempt-1)``
(capped at ``backoff_max_s``) until ``max_attempts``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from processing.notify.outbox import Delivery, Outbox, target_id
from processing.notify.settings import NotifyConfig, Recipient

log = logging.getLogger("wellsense.notify")

NS = 1_000_000_000
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z.]{2,}")
Report = Callable[[Delivery, str, str], None]  # (delivery, new status, error)
Send = Callable[[str, str, str], str | None]  # (url, title, body) -> error or None


def due_ns(recipient: Recipient, now_ns: int, timezone: str) -> int:
    """When an event queued now is sent to ``recipient``: now, or at its next digest time."""
    if recipient.digest_at is None:
        return now_ns
    tz = ZoneInfo(timezone)
    now = dt.datetime.fromtimestamp(now_ns / NS, tz)
    at = dt.datetime.combine(now.date(), recipient.digest_at, tz)
    if at <= now:
        at = dt.datetime.combine(now.date() + dt.timedelta(days=1), recipient.digest_at, tz)
    return int(at.timestamp()) * NS


def describe(event: dict[str, Any]) -> tuple[str, str]:
    """Title and plain-language body of one alert event (no URLs, no secrets)."""
    who = _who(event)
    firing = event.get("state") == "firing"
    verb = "Alert" if firing else "Resolved"
    title = f"[WellSense {event['study']}] {verb}: {event['rule']} for {who}"
    when = _time(int(event["ts_ns"]))
    lines = [
        f"{verb} ({event.get('severity', '')}) for {who}.",
        f"What it means: {event.get('description') or event['rule']}",
        f"Details: {event.get('message', '')}",
        f"{'Started' if firing else 'Resolved'} at: {when}",
    ]
    if not firing:
        lines.append(f"It had started at: {_time(int(event.get('since_ns', event['ts_ns'])))}")
    lines.append(f"Rule: {event['rule']} - study {event['study']}")
    return title, "\n".join(lines)


def describe_digest(events: Sequence[dict[str, Any]]) -> tuple[str, str]:
    study = events[0]["study"]
    title = f"[WellSense {study}] Daily digest: {len(events)} alert change(s)"
    lines = [f"Alert changes since the last digest ({len(events)}):", ""]
    for e in events:
        state = "ALERT" if e.get("state") == "firing" else "resolved"
        lines.append(f"- {_time(int(e['ts_ns']))}  {state}  {e['rule']}  {_who(e)}: "
                     f"{e.get('message', '')}")  # fmt: skip
    return title, "\n".join(lines)


def _who(event: dict[str, Any]) -> str:
    if event.get("scope") == "gateway":
        return f"gateway {event.get('gateway', '')}"
    if event.get("scope") == "device":
        return f"participant {event.get('participant', '')} (device {event.get('device', '')})"
    return f"participant {event.get('participant', '')}"


def _time(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / NS, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def apprise_send(url: str, title: str, body: str) -> str | None:
    """Send one message through Apprise; None on success, else a short reason."""
    # Apprise logs recipients' addresses and hosts: keep them out of the service's logs
    # (what matters reaches the log through our own "alert delivery failed" line).
    logging.getLogger("apprise").propagate = False
    import apprise

    ap = apprise.Apprise()
    if not ap.add(url):
        return "Apprise cannot use the configured URL"
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        ok = ap.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
        text = captured.getvalue() if hasattr(captured, "getvalue") else ""
    if ok:
        return None
    last = [line for line in str(text).splitlines() if line.strip()]
    reason = last[-1] if last else "delivery failed"
    reason = re.sub(r"\S+://\S+", "<url>", reason)
    return _EMAIL.sub("<address>", reason)[:300]


class Dispatcher:
    """Sends due deliveries; call :meth:`run_once` from the lease holder's loop."""

    def __init__(
        self,
        outbox: Outbox,
        config: NotifyConfig,
        *,
        study: str,
        holder: str,
        report: Report | None = None,
        send: Send = apprise_send,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.study = study
        self.holder = holder
        self.report = report
        self.send = send
        self._next_prune_ns = 0
        self._urls = {(r.name, target_id(u)): u for r in config.recipients.values() for u in r.urls}

    def run_once(self, epoch: int) -> int:
        """Send everything due now; returns how many rows were handled."""
        claimed = self.outbox.claim_due(self.study, self.holder, epoch)
        now = self.outbox.clock()
        if now >= self._next_prune_ns:
            self._next_prune_ns = now + 3600 * NS
            keep_ns = int(self.config.retention_days * 86400) * NS
            self.outbox.prune(self.study, now - keep_ns)

        def key(d: Delivery) -> tuple[str, str, bool]:
            return (d.recipient, d.target, d.digest)

        for (recipient, target, digest), group in groupby(sorted(claimed, key=key), key=key):
            items = list(group)
            if digest:
                self._deliver(recipient, target, items, *describe_digest([d.event for d in items]))
            else:
                for d in items:
                    self._deliver(recipient, target, [d], *describe(d.event))
        return len(claimed)

    def _deliver(
        self, recipient: str, target: str, items: list[Delivery], title: str, body: str
    ) -> None:
        url = self._urls.get((recipient, target))
        error = "the URL is no longer configured" if url is None else self.send(url, title, body)
        ids = [d.id for d in items]
        attempts = max(d.attempts for d in items)
        retry_at = None
        if error is not None and url is not None and attempts < self.config.max_attempts:
            delay = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (attempts - 1))
            retry_at = self.outbox.clock() + int(delay * NS)
        status = self.outbox.finish(
            ids, self.holder, ok=error is None, error=error or "", retry_at_ns=retry_at
        )
        fields = {"recipient": recipient, "n": len(items), "status": status, "attempt": attempts}
        if error is None:
            log.info("alert delivered", extra={"fields": fields})
        else:
            log.warning("alert delivery failed", extra={"fields": {**fields, "error": error}})
        if self.report is not None:
            for d in items:
                try:
                    self.report(d, status, error or "")
                except Exception:  # the status point is informative; the queue is the truth
                    log.exception("could not record the delivery status")
