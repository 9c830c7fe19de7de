"""The gateway's local store of raw samples, for data minimisation mode (SQLite, WAL).

With ``[minimise] enabled``, raw heart rate, RR intervals and activity never
leave the home: the batcher hands each closed ``hr``/``activity`` batch to
:meth:`RawStore.store` instead of the outbox, the minimiser
(:mod:`collector.minimise`) reads the RR of each closed window back from here
to compute its features, and :meth:`RawStore.purge_expired` deletes what is
older than ``keep_raw_days``.

One row per sample, one per RR beat (its time back-computed with
:func:`collector.wire.hr_beat_times_ns`, exactly as processing stores ``rr``
points), so a window is a range query. Like the outbox, a batch is committed
in one transaction with ``synchronous=FULL``: a power cut loses at most the
open batch. The outbox's process lock on the same ``data_dir`` already keeps a
second collector away, so this store takes none of its own.

Counters (``stored_*``, ``purged_*``, ``erased``) live in the same file and
survive restarts; :meth:`RawStore.stats` reports them with the row counts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from collector import wire
from collector.sqlitetx import immediate

log = logging.getLogger(__name__)

NS_PER_DAY: Final = 86_400 * 1_000_000_000
_SCHEMA_VERSION: Final = 1
_TABLES: Final = ("hr", "rr", "activity")
_SCHEMA: Final = """
CREATE TABLE hr (device TEXT NOT NULL, participant TEXT NOT NULL, ts_ns INTEGER NOT NULL,
                 hr_bpm INTEGER NOT NULL, contact INTEGER, energy_kj INTEGER);
CREATE INDEX hr_device_time ON hr (device, ts_ns);
CREATE INDEX hr_time ON hr (ts_ns);
CREATE TABLE rr (device TEXT NOT NULL, participant TEXT NOT NULL, beat_ns INTEGER NOT NULL,
                 rr_ms REAL NOT NULL);
CREATE INDEX rr_device_time ON rr (device, beat_ns);
CREATE INDEX rr_time ON rr (beat_ns);
CREATE TABLE activity (device TEXT NOT NULL, participant TEXT NOT NULL, ts_ns INTEGER NOT NULL,
                       cadence_spm REAL, speed_mps REAL, steps INTEGER, counts INTEGER);
CREATE INDEX activity_time ON activity (ts_ns);
-- The end of the last window whose features were committed to the outbox.
CREATE TABLE windows_done (device TEXT PRIMARY KEY, until_ns INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID
"""


class RawStoreError(Exception):
    """The raw store cannot be opened or used; the message names the file."""


@dataclass(frozen=True, slots=True)
class RawStats:
    """Rows held now and lifetime counters (they survive restarts)."""

    rows: dict[str, int]
    counters: dict[str, int]


class RawStore:
    """Raw samples of this gateway's sensors, kept ``keep_raw_days`` days.

    Args:
        path: the SQLite file; created (with its directory) if missing.
        keep_raw_days: age, by sample time, after which rows are purged.
        clock: wall clock in ns on the same scale as sample times (injected
            in tests, the simulation clock in the demo).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keep_raw_days: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if keep_raw_days < 1:
            raise ValueError(f"keep_raw_days must be at least 1, got {keep_raw_days}")
        self.path = Path(path)
        self.keep_ns = keep_raw_days * NS_PER_DAY
        self._clock = clock
        self._lock = threading.Lock()  # erasure runs on the publisher's thread
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            raise RawStoreError(f"raw store {self.path} cannot be opened: {exc}") from None

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if [r[0] for r in conn.execute("PRAGMA quick_check")] != ["ok"]:
                raise RawStoreError(f"raw store {self.path} is corrupt; move it aside")
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise RawStoreError(f"could not put {self.path} in WAL mode")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_size_limit=4194304")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                conn.execute("COMMIT")
            elif version != _SCHEMA_VERSION:
                raise RawStoreError(f"{self.path} has raw store schema {version}, not 1")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn) as conn:
            yield conn

    @staticmethod
    def _count(conn: sqlite3.Connection, name: str, n: int) -> None:
        conn.execute(
            "INSERT INTO counters VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    # -- writing -----------------------------------------------------------------

    def store(
        self, participant: str, device: str, stream: str, samples: Sequence[wire.Sample]
    ) -> int:
        """Keep one closed batch of ``hr`` or ``activity`` samples; returns rows written."""
        hr, rr, activity = [], [], []
        for s in samples:
            if isinstance(s, wire.HrSample):
                contact = None if s.contact is None else int(s.contact)
                hr.append((device, participant, s.ts_ns, s.hr_bpm, contact, s.energy_kj))
                times = wire.hr_beat_times_ns(s)
                rr += [(device, participant, t, v) for t, v in zip(times, s.rr_ms, strict=True)]
            elif isinstance(s, wire.ActivitySample):
                activity.append(
                    (device, participant, s.ts_ns, s.cadence_spm, s.speed_mps, s.steps, s.counts)
                )
            else:
                raise ValueError(f"stream {stream!r} is not raw data")
        with self._transaction() as conn:
            conn.executemany("INSERT INTO hr VALUES (?, ?, ?, ?, ?, ?)", hr)
            conn.executemany("INSERT INTO rr VALUES (?, ?, ?, ?)", rr)
            conn.executemany("INSERT INTO activity VALUES (?, ?, ?, ?, ?, ?, ?)", activity)
            for table, rows in (("hr", hr), ("rr", rr), ("activity", activity)):
                if rows:
                    self._count(conn, f"stored_{table}", len(rows))
        return len(hr) + len(rr) + len(activity)

    # -- windows -------------------------------------------------------------------

    def done_until(self, device: str) -> int:
        """End of the last window of ``device`` whose features were sent (0: none)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT until_ns FROM windows_done WHERE device = ?", (device,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def mark_done(self, device: str, until_ns: int) -> None:
        """Record that the windows of ``device`` before ``until_ns`` were sent."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO windows_done VALUES (?, ?)"
                " ON CONFLICT (device) DO UPDATE SET until_ns = max(until_ns, excluded.until_ns)",
                (device, until_ns),
            )
            self._count(conn, "windows_sent", 1)

    def first_beat(self, device: str, at_or_after_ns: int) -> int | None:
        """Time of the first stored beat of ``device`` at or after a time."""
        with self._lock:
            row = self._conn.execute(
                "SELECT min(beat_ns) FROM rr WHERE device = ? AND beat_ns >= ?",
                (device, at_or_after_ns),
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def newest(self, device: str) -> int | None:
        """Data time of ``device``: its newest stored heart-rate sample."""
        with self._lock:
            row = self._conn.execute(
                "SELECT max(ts_ns) FROM hr WHERE device = ?", (device,)
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def beats(self, device: str, start_ns: int, end_ns: int) -> tuple[list[int], list[float]]:
        """(beat times in ns, RR in ms) of ``device`` with ``start <= time < end``.

        Sorted by time, then value: the order processing's feature query uses.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT beat_ns, rr_ms FROM rr WHERE device = ? AND beat_ns >= ? AND beat_ns < ?"
                " ORDER BY beat_ns, rr_ms",
                (device, start_ns, end_ns),
            ).fetchall()
        return [int(r[0]) for r in rows], [float(r[1]) for r in rows]

    # -- deleting ------------------------------------------------------------------

    def purge_expired(self) -> dict[str, int]:
        """Delete rows older than ``keep_raw_days`` (by sample time); rows per table."""
        cutoff = self._clock() - self.keep_ns
        purged: dict[str, int] = {}
        with self._transaction() as conn:
            for table in _TABLES:
                column = "beat_ns" if table == "rr" else "ts_ns"
                n = conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,)).rowcount
                purged[table] = n
                if n:
                    self._count(conn, f"purged_{table}", n)
        if any(purged.values()):
            log.info("raw data past its keeping time deleted", extra={"purged": purged})
        return purged

    def erase_participant(self, participant: str) -> int:
        """Delete every raw row of ``participant`` (erasure on request); rows deleted."""
        total = 0
        with self._transaction() as conn:
            for table in _TABLES:
                total += conn.execute(
                    f"DELETE FROM {table} WHERE participant = ?", (participant,)
                ).rowcount
            self._count(conn, "erased", total)
        return total

    # -- reporting -----------------------------------------------------------------

    def stats(self) -> RawStats:
        with self._lock:
            rows = {
                t: int(self._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in _TABLES
            }
            counters = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        return RawStats(rows=rows, counters=counters)

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock, contextlib.suppress(sqlite3.ProgrammingError):
            self._conn.close()

    def __enter__(self) -> RawStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
