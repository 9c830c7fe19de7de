"""The durable delivery queue and the rules-runner lease, in one SQLite file.

One row per (alert event, recipient, target URL). The row's unique key is
``(study, rule, subject, state, event_ns, recipient, target)``: enqueueing the
same event twice (a restart, a second runner, a replay) adds nothing, so an
event reaches each recipient at most once.

Row life: ``pending`` -> ``sending`` (claimed by the dispatcher, committed
*before* the network call) -> ``sent``; a failed attempt goes back to
``pending`` with an exponential backoff until ``max_attempts``, then
``failed``. A row still ``sending`` when a new leader takes over was being
sent when its worker died: it becomes ``interrupted`` and is not sent again
(at most once; the dashboard and ``alert_delivery`` show it).

SQLite gives what a lease needs and MQTT or InfluxDB do not: an atomic
compare-and-set (``BEGIN IMMEDIATE`` takes the write lock, so two workers
cannot both see the lease free and both take it). The file is shared by the
workers of one host (``[notify] state_dir``); SQLite over a network file
system is not safe, so workers on several hosts must run the rules on one of
them only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from collector.sqlitetx import scrub

PENDING: Final = "pending"
SENDING: Final = "sending"
SENT: Final = "sent"
FAILED: Final = "failed"
INTERRUPTED: Final = "interrupted"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY,
    study TEXT NOT NULL,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL,
    event_ns INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    target TEXT NOT NULL,
    event TEXT NOT NULL,
    digest INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ns INTEGER NOT NULL,
    changed_ns INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    claimed_by TEXT NOT NULL DEFAULT '',
    UNIQUE (study, rule, subject, state, event_ns, recipient, target)
);
CREATE INDEX IF NOT EXISTS delivery_due ON delivery (status, next_ns);
CREATE TABLE IF NOT EXISTS lease (
    study TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ns INTEGER NOT NULL,
    epoch INTEGER NOT NULL
);
"""


class LeaseLost(RuntimeError):
    """This worker no longer holds the study's lease: it must stop running the rules."""


def target_id(url: str) -> str:
    """A short stable id of a delivery URL (the URL itself is a secret)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    study: str
    rule: str
    subject: str
    state: str
    event_ns: int
    recipient: str
    target: str
    event: dict[str, Any]
    digest: bool
    status: str
    attempts: int
    last_error: str


class Outbox:
    """The queue and the lease; one connection per instance (one thread)."""

    def __init__(self, path: Path, *, clock: Any = time.time_ns) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.clock = clock  # wall time: leases and retries are real-world time
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- lease ---------------------------------------------------------------------

    def acquire(self, study: str, holder: str, ttl_s: float) -> int | None:
        """Take or renew the study's lease; its epoch if held, None if another holds it.

        A new holder (the lease was free or expired) gets a new epoch and marks
        what the previous holder was sending as interrupted.
        """
        now = self.clock()
        expires = now + int(ttl_s * 1e9)
        with self._write() as db:
            row = db.execute(
                "SELECT holder, expires_ns, epoch FROM lease WHERE study = ?", (study,)
            ).fetchone()
            if row is not None and row[0] != holder and row[1] > now:
                return None
            if row is not None and row[0] == holder:
                db.execute("UPDATE lease SET expires_ns = ? WHERE study = ?", (expires, study))
                return int(row[2])
            epoch = (row[2] if row else 0) + 1
            db.execute(
                "INSERT INTO lease (study, holder, expires_ns, epoch) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (study) DO UPDATE SET holder = excluded.holder, "
                "expires_ns = excluded.expires_ns, epoch = excluded.epoch",
                (study, holder, expires, epoch),
            )
            db.execute(
                "UPDATE delivery SET status = ?, changed_ns = ?, "
                "last_error = 'the worker sending it stopped' WHERE study = ? AND status = ?",
                (INTERRUPTED, now, study, SENDING),
            )
            return int(epoch)

    def release(self, study: str, holder: str) -> None:
        """Give the lease up at once (on a clean stop); the epoch keeps counting."""
        with self._write() as db:
            db.execute(
                "UPDATE lease SET expires_ns = 0 WHERE study = ? AND holder = ?", (study, holder)
            )

    def holder(self, study: str) -> tuple[str, int, int] | None:
        """(holder, expires_ns, epoch) of the study's lease, or None."""
        row = self.db.execute(
            "SELECT holder, expires_ns, epoch FROM lease WHERE study = ?", (study,)
        ).fetchone()
        return (str(row[0]), int(row[1]), int(row[2])) if row else None

    def _check_lease(self, db: sqlite3.Connection, study: str, holder: str, epoch: int) -> None:
        row = db.execute(
            "SELECT holder, expires_ns, epoch FROM lease WHERE study = ?", (study,)
        ).fetchone()
        if row is None or row[0] != holder or row[2] != epoch or row[1] <= self.clock():
            raise LeaseLost(study)

    # -- queue ---------------------------------------------------------------------

    def enqueue(
        self,
        event: dict[str, Any],
        rows: Sequence[tuple[str, str, bool, int]],
        *,
        holder: str,
        epoch: int,
    ) -> int:
        """Queue ``event`` for each (recipient, target, digest, due_ns); rows already there stay.

        Fenced: raises :class:`LeaseLost` (and queues nothing) unless ``holder``
        still holds the lease with ``epoch``. Returns how many rows were new.
        """
        study = str(event["study"])
        subject = subject_key(event)
        text = json.dumps(event, separators=(",", ":"), allow_nan=False)
        now = self.clock()
        added = 0
        with self._write() as db:
            self._check_lease(db, study, holder, epoch)
            for recipient, target, digest, due_ns in rows:
                cur = db.execute(
                    "INSERT OR IGNORE INTO delivery (study, rule, subject, state, event_ns, "
                    "recipient, target, event, digest, status, next_ns, changed_ns) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        study,
                        event["rule"],
                        subject,
                        event["state"],
                        int(event["ts_ns"]),
                        recipient,
                        target,
                        text,
                        int(digest),
                        PENDING,
                        due_ns,
                        now,
                    ),
                )
                added += cur.rowcount
        return added

    def claim_due(self, study: str, holder: str, epoch: int, limit: int = 100) -> list[Delivery]:
        """Mark what is due as ``sending`` (committed before anything is sent)."""
        now = self.clock()
        with self._write() as db:
            self._check_lease(db, study, holder, epoch)
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM delivery WHERE study = ? AND status = ? AND next_ns <= ? "
                "ORDER BY recipient, target, event_ns LIMIT ?",
                (study, PENDING, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE delivery SET status = ?, claimed_by = ?, changed_ns = ?, "
                "attempts = attempts + 1 WHERE id = ?",
                [(SENDING, holder, now, r[0]) for r in rows],
            )
        return [_delivery(r, status=SENDING, extra_attempt=1) for r in rows]

    def finish(
        self,
        ids: Sequence[int],
        holder: str,
        *,
        ok: bool,
        error: str = "",
        retry_at_ns: int | None = None,
    ) -> str:
        """Record the outcome of one send of ``ids``; returns the new status."""
        status = SENT if ok else (PENDING if retry_at_ns is not None else FAILED)
        now = self.clock()
        with self._write() as db:
            db.executemany(
                "UPDATE delivery SET status = ?, changed_ns = ?, last_error = ?, "
                "next_ns = COALESCE(?, next_ns) WHERE id = ? AND claimed_by = ?",
                [(status, now, error[:300], retry_at_ns, i, holder) for i in ids],
            )
        return status

    def prune(self, study: str, older_than_ns: int) -> int:
        """Forget finished deliveries of events before ``older_than_ns``.

        The newest event of each rule and subject stays (a new leader restores
        from it), and so does anything not yet finished.
        """
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM delivery WHERE study = ? AND event_ns < ? AND status IN (?, ?, ?) "
                "AND event_ns < (SELECT MAX(event_ns) FROM delivery e WHERE e.study = "
                "delivery.study AND e.rule = delivery.rule AND e.subject = delivery.subject)",
                (study, older_than_ns, SENT, FAILED, INTERRUPTED),
            )
        return int(cur.rowcount)

    def erase_participant(self, study: str, participant: str, *, dry_run: bool = False) -> int:
        """Delete every queued or finished delivery about ``participant`` (erasure).

        Their device alerts too (subject ``<participant>/<device>``). Deleted
        with ``secure_delete`` on, then the WAL truncated and the file vacuumed,
        so the alert texts leave the file. Returns the rows (that would go).
        """
        where = "study = ? AND (subject = ? OR substr(subject, 1, ?) = ?)"
        args = (study, participant, len(participant) + 1, participant + "/")
        if dry_run:
            row = self.db.execute(f"SELECT COUNT(*) FROM delivery WHERE {where}", args).fetchone()
            return int(row[0])
        self.db.execute("PRAGMA secure_delete=ON")
        try:
            with self._write() as db:
                n = int(db.execute(f"DELETE FROM delivery WHERE {where}", args).rowcount)
        finally:
            self.db.execute("PRAGMA secure_delete=OFF")
        if n:
            scrub(self.db)
        return n

    def last_events(self, study: str) -> list[dict[str, Any]]:
        """The newest queued event of every (rule, subject): a new leader's memory."""
        rows = self.db.execute(
            "SELECT event FROM delivery d WHERE study = ? AND event_ns = "
            "(SELECT MAX(event_ns) FROM delivery e WHERE e.study = d.study "
            "AND e.rule = d.rule AND e.subject = d.subject) GROUP BY rule, subject",
            (study,),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def deliveries(self, study: str) -> list[Delivery]:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM delivery WHERE study = ? ORDER BY event_ns, recipient, id",
            (study,),
        ).fetchall()
        return [_delivery(r) for r in rows]


_COLUMNS = (
    "id, study, rule, subject, state, event_ns, recipient, target, event, digest, status, "
    "attempts, last_error"
)


def _delivery(row: Sequence[Any], *, status: str | None = None, extra_attempt: int = 0) -> Delivery:
    return Delivery(
        id=int(row[0]),
        study=row[1],
        rule=row[2],
        subject=row[3],
        state=row[4],
        event_ns=int(row[5]),
        recipient=row[6],
        target=row[7],
        event=json.loads(row[8]),
        digest=bool(row[9]),
        status=status or row[10],
        attempts=int(row[11]) + extra_attempt,
        last_error=row[12],
    )


def subject_key(event: dict[str, Any]) -> str:
    """``p-0001``, ``p-0001/dev-1`` or ``_gateways/gw-1`` (as :attr:`Subject.key`)."""
    if event.get("scope") == "gateway":
        return f"_gateways/{event.get('gateway', '')}"
    if event.get("scope") == "device":
        return f"{event.get('participant', '')}/{event.get('device', '')}"
    return str(event.get("participant", ""))
