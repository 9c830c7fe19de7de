"""The durable dead-letter store: every rejected message or sample, whole, in SQLite.

Why SQLite and not InfluxDB: a dead letter is a blob to look into and replay
(up to :data:`collector.wire.MAX_MESSAGE_BYTES`, 256 KiB), not a time series;
InfluxDB string fields are capped at 64 KiB, cannot be queried by id, and a
store that holds what InfluxDB *rejected* must not depend on InfluxDB. A
local file keeps working while InfluxDB is down, and the workers of one host
share it (WAL mode, ``BEGIN IMMEDIATE``).

Each row is one dead letter: ``kind`` is ``message`` (the whole message was
rejected; ``payload`` is what arrived) or ``samples`` (some samples of an
otherwise valid message were dropped; ``payload`` is the message with only
those samples, so it can be replayed alone). ``participant`` (from the topic)
and ``gateway``/``epoch``/``device``/``seq`` (read leniently from the payload)
are filled when readable.

Bounded: above ``max_rows`` rows or ``max_bytes`` of payload the oldest rows
are deleted and counted (``evicted``, kept in the file; processing reports it
as ``dead_evicted``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from collector import stored, wire
from collector.sqlitetx import immediate

DEFAULT_MAX_ROWS: Final = 100_000
DEFAULT_MAX_BYTES: Final = 1024**3
KIND_MESSAGE: Final = "message"
KIND_SAMPLES: Final = "samples"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS deadletter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    field TEXT NOT NULL,
    error TEXT NOT NULL,
    topic TEXT NOT NULL,
    worker TEXT NOT NULL,
    participant TEXT,
    gateway TEXT,
    epoch TEXT,
    device TEXT,
    seq INTEGER,
    payload BLOB NOT NULL,
    replayed_ns INTEGER,
    replay_result TEXT
);
CREATE INDEX IF NOT EXISTS deadletter_participant ON deadletter (participant);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('evicted', 0), ('rows', 0), ('bytes', 0);
"""

_COLUMNS: Final = (
    "id, received_ns, kind, reason, field, error, topic, worker, participant, gateway, "
    "epoch, device, seq, length(payload), replayed_ns, replay_result"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One stored dead letter (``payload`` is None in listings)."""

    id: int
    received_ns: int
    kind: str
    reason: str
    field: str
    error: str
    topic: str
    worker: str
    participant: str | None
    gateway: str | None
    epoch: str | None
    device: str | None
    seq: int | None
    payload_bytes: int
    replayed_ns: int | None
    replay_result: str | None
    payload: bytes | None = None


def participant_of(topic: str) -> str | None:
    """The participant of a data topic, or None (gateway topics, garbage)."""
    try:
        return wire.parse_topic(topic).participant
    except wire.WireError:
        return None


class DeadLetterStore:
    """A dead-letter SQLite file (created with its directory, mode 0600)."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)  # dead letters hold participant data
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # acked only once stored
        self._conn.execute("PRAGMA secure_delete=ON")  # an erased row leaves no bytes
        self._conn.executescript(_SCHEMA)  # idempotent: every worker may run it

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> DeadLetterStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------

    def add(
        self,
        *,
        received_ns: int,
        kind: str,
        reason: str,
        field: str,
        error: str,
        topic: str,
        worker: str,
        payload: bytes,
    ) -> int:
        """Store one dead letter durably (fsynced) and return its id."""
        env = stored.envelope(payload)
        payload = payload[: wire.MAX_MESSAGE_BYTES]
        with immediate(self._conn) as c:
            cur = c.execute(
                "INSERT INTO deadletter (received_ns, kind, reason, field, error, topic, worker,"
                " participant, gateway, epoch, device, seq, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    received_ns,
                    kind,
                    reason,
                    field[:300],
                    error[:1000],
                    topic[:300],
                    worker,
                    participant_of(topic),
                    env.gateway if env else None,
                    env.epoch if env else None,
                    env.device if env else None,
                    env.seq if env else None,
                    payload,
                ),
            )
            c.execute(
                "UPDATE meta SET value = value + CASE key WHEN 'rows' THEN 1 ELSE ? END"
                " WHERE key IN ('rows', 'bytes')",
                (len(payload),),
            )
            self._evict(c)
        row_id = cur.lastrowid
        assert row_id is not None
        return row_id

    def _evict(self, c: sqlite3.Connection) -> None:
        rows, size = self._totals(c)
        while rows > self.max_rows or size > self.max_bytes:
            oldest = c.execute(
                "SELECT id, length(payload) FROM deadletter ORDER BY id LIMIT 1"
            ).fetchone()
            if oldest is None:
                break
            c.execute("DELETE FROM deadletter WHERE id = ?", (oldest[0],))
            rows, size = rows - 1, size - oldest[1]
            c.execute("UPDATE meta SET value = value + 1 WHERE key = 'evicted'")
        c.execute("UPDATE meta SET value = ? WHERE key = 'rows'", (rows,))
        c.execute("UPDATE meta SET value = ? WHERE key = 'bytes'", (size,))

    @staticmethod
    def _totals(c: sqlite3.Connection) -> tuple[int, int]:
        values = dict(c.execute("SELECT key, value FROM meta").fetchall())
        return int(values["rows"]), int(values["bytes"])

    def mark_replayed(self, row_id: int, replayed_ns: int, result: str) -> None:
        with immediate(self._conn) as c:
            c.execute(
                "UPDATE deadletter SET replayed_ns = ?, replay_result = ? WHERE id = ?",
                (replayed_ns, result[:1000], row_id),
            )

    def delete_participant(self, participant: str) -> int:
        """Delete every dead letter of ``participant`` (erasure); return how many.

        ``secure_delete`` zeroes the freed pages and the WAL is truncated, so
        the file keeps none of the deleted payloads' bytes.
        """
        with immediate(self._conn) as c:
            rows = c.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM deadletter"
                " WHERE participant = ?",
                (participant,),
            ).fetchone()
            c.execute("DELETE FROM deadletter WHERE participant = ?", (participant,))
            total_rows, total_bytes = self._totals(c)
            c.execute("UPDATE meta SET value = ? WHERE key = 'rows'", (total_rows - rows[0],))
            c.execute("UPDATE meta SET value = ? WHERE key = 'bytes'", (total_bytes - rows[1],))
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(rows[0])

    def count_participant(self, participant: str) -> int:
        """How many dead letters of ``participant`` the store holds."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM deadletter WHERE participant = ?", (participant,)
        ).fetchone()
        return int(row[0])

    # -- reading -------------------------------------------------------------------

    @property
    def evicted(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'evicted'").fetchone()
        return int(row[0])

    def list(
        self,
        *,
        reason: str | None = None,
        participant: str | None = None,
        gateway: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        replayed: bool | None = None,
        limit: int = 1000,
    ) -> list[DeadLetter]:
        """Dead letters matching every filter given, oldest first."""
        where: list[str] = []
        args: list[object] = []
        for column, value in (("reason", reason), ("participant", participant)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if gateway is not None:
            where.append("gateway = ?")
            args.append(gateway)
        if since_ns is not None:
            where.append("received_ns >= ?")
            args.append(since_ns)
        if until_ns is not None:
            where.append("received_ns < ?")
            args.append(until_ns)
        if replayed is not None:
            where.append("replayed_ns IS NOT NULL" if replayed else "replayed_ns IS NULL")
        sql = f"SELECT {_COLUMNS} FROM deadletter"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id LIMIT ?"
        return [DeadLetter(*row) for row in self._conn.execute(sql, (*args, limit))]

    def get(self, row_id: int) -> DeadLetter | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS}, payload FROM deadletter WHERE id = ?", (row_id,)
        ).fetchone()
        return None if row is None else DeadLetter(*row)
