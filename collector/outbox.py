"""Durable store-and-forward outbox with per-device sequence numbers (SQLite, WAL).

Every wire message is committed here before it is published and deleted
only when processing confirms it is stored (:mod:`collector.stored`), so
nothing is lost while the network, the broker, processing or InfluxDB is
down, or when a process dies. One SQLite file holds the messages and each
device's next sequence number, and both change in the same transaction: a
crash can never reuse a sequence number (the counter is durable the moment
the message is) nor skip one silently (``append`` refuses any number but
the next).

Row states
    *appended* (``sent_ns`` NULL) -> *sent* (:meth:`Outbox.mark_sent` on the
    broker's PUBACK, any reason code: it only means the broker has it) ->
    deleted by :meth:`Outbox.confirm` once a storage confirmation covers
    its (epoch, device, seq). A sent row that stays unconfirmed is sent
    again by the publisher (:mod:`collector.publisher`); repeats are harmless
    (idempotent writes, de-duplication in processing).

Epoch
    A random 128-bit id (32 hex digits) created with the file and kept in it
    (:attr:`Outbox.epoch`). Every message carries it, so when an outbox is
    replaced (a corrupt file moved aside, a re-flashed SD card, a swapped
    gateway) and sequence numbers restart at 0, processing does not take the
    new messages for repeats of the old ones. Rows from before schema 2 have
    no epoch (``legacy``) and are confirmed with ``epoch: null``.

Batch journal
    The samples of the batcher's open batches (:mod:`collector.batcher`) are
    journaled in the same file and deleted in the transaction that appends
    their closed batch, so a sample is either in the journal or in a message,
    never both, never neither. Journal commits are not fsynced
    (``synchronous=NORMAL`` for them), so a process crash loses nothing; a
    power cut loses at most what was journaled since the last fsync of the
    WAL (:meth:`Outbox.sync`, called by the collector every
    ``journal_sync_s``, and every FULL commit).

Durability (fsync) policy
    The database runs in WAL mode. With ``synchronous="FULL"`` (default)
    SQLite fsyncs the WAL on every commit, so a message whose ``append`` has
    returned survives a process crash, SIGKILL *and* a power cut. With
    ``"NORMAL"`` a commit is only written to the OS; the WAL is fsynced at
    checkpoints, so a process crash loses nothing but a power cut may roll
    back the last commits (the file stays consistent either way). FULL is
    the default because a Raspberry Pi gets unplugged; ``bench/outbox.py``
    measures what it costs.

Size bound and eviction
    ``max_bytes`` (payload + topic octets) and ``max_rows`` bound the queue.
    When an append would exceed a bound, the *oldest* messages are evicted
    in the same transaction: recent data is worth more to a study than data
    that is days old, and the receiver sees the evicted sequence numbers as
    a gap. Evictions are never silent: they are logged at WARNING with the
    device and sequence range, and counted in :meth:`Outbox.stats`
    (persistently, across restarts). A single message larger than
    ``max_bytes`` is refused with :class:`MessageTooLargeError`.

Corruption
    Opening runs ``PRAGMA quick_check``; a damaged or foreign file raises
    :class:`OutboxCorruptError` naming the path. The file is never deleted
    or rewritten: the operator moves it aside (keep it, rows may be
    recoverable with ``sqlite3 .recover``) and restarts.

Threads and processes
    All methods are thread-safe (paho's PUBACK callback runs on its network
    thread). One process owns an outbox at a time, enforced with ``flock`` on
    a ``<path>.lock`` sidecar, released by the kernel even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from collector.sqlitetx import immediate, secure_delete
from collector.sqlitetx import scrub as scrub_file

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FIRST_SEQ",
    "JournalRow",
    "MessageTooLargeError",
    "Outbox",
    "OutboxCorruptError",
    "OutboxError",
    "OutboxLockedError",
    "OutboxMessage",
    "OutboxStats",
    "SequenceError",
]

log = logging.getLogger(__name__)

FIRST_SEQ = 0
"""The sequence number of a device's first message."""
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""About a week of 4 sensors' HR + RR at typical message sizes."""

_SCHEMA_VERSION = 2
_SQLITE_MAGIC = b"SQLite format 3\x00"
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

_SCHEMA = """
-- AUTOINCREMENT: ids are never reused, even after the queue empties, so a
-- late PUBACK for an old id can never delete a newer message.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE device_seq (device TEXT PRIMARY KEY, next_seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters VALUES ('evicted', 0), ('evicted_bytes', 0);
"""
# Schema 2 (also the migration from 1): row states, the epoch, the batch journal.
_SCHEMA_2 = """
ALTER TABLE outbox ADD COLUMN sent_ns INTEGER;
ALTER TABLE outbox ADD COLUMN legacy INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET legacy = 1;
CREATE UNIQUE INDEX outbox_device_seq ON outbox (device, seq);
CREATE INDEX outbox_sent ON outbox (sent_ns) WHERE sent_ns IS NOT NULL;
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE journal (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    stream TEXT NOT NULL,
    participant TEXT,
    topic TEXT NOT NULL,
    sample TEXT NOT NULL
);
INSERT OR IGNORE INTO counters VALUES ('confirmed_dead', 0);
"""


class OutboxError(Exception):
    """Root of every error the outbox raises on purpose."""


class OutboxCorruptError(OutboxError):
    """The database file is damaged or is not an outbox; it was left untouched."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"outbox database {path} is corrupt ({detail}); it was NOT modified. "
            "Move it aside (keep it for recovery) and restart to begin a new outbox."
        )
        self.path = path
        self.detail = detail


class OutboxLockedError(OutboxError):
    """Another process already has this outbox open."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"outbox {path} is in use by another process")
        self.path = path


class SequenceError(OutboxError):
    """``append`` was given a sequence number other than the device's next one."""

    def __init__(self, device: str, expected: int, got: int) -> None:
        super().__init__(f"device {device!r}: expected sequence number {expected}, got {got}")
        self.device = device
        self.expected = expected
        self.got = got


class MessageTooLargeError(OutboxError):
    """One message is larger than the whole outbox may be."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the outbox bound of {limit} bytes")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A stored message; ``created_ns`` is the wall clock at ``append``."""

    id: int
    topic: str
    payload: bytes
    device: str
    seq: int
    created_ns: int
    sent_ns: int | None = None


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One journaled sample of an open batch (``sample`` is its wire JSON)."""

    id: int
    device: str
    stream: str
    participant: str | None
    topic: str
    sample: str


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counters since the outbox file was created (they survive restarts).

    ``appended == acked + evicted + purged + depth`` always holds; ``acked``
    counts messages confirmed by processing (stored or dead-lettered; the
    latter also in ``confirmed_dead``). ``sent`` of the ``depth`` rows were
    acknowledged by the broker and await confirmation. ``oldest_age_s`` is
    ``None`` when the outbox is empty. ``purged`` counts messages deleted on
    an erasure request (:meth:`Outbox.purge`). ``journal`` is the number of
    journaled samples of open batches.
    """

    appended: int
    acked: int
    evicted: int
    evicted_bytes: int
    depth: int
    depth_bytes: int
    oldest_age_s: float | None
    purged: int = 0
    sent: int = 0
    confirmed_dead: int = 0
    journal: int = 0


class Outbox:
    """A durable FIFO of MQTT messages plus per-device sequence numbers.

    Args:
        path: the SQLite file; created (with its directory) if missing.
        max_bytes: bound on stored payload + topic octets, ``None`` for none.
        max_rows: bound on stored messages, ``None`` for none.
        synchronous: ``"FULL"`` (fsync every commit; power-cut safe) or
            ``"NORMAL"`` (crash safe; a power cut may lose the last commits).
        clock: wall clock in ns, for ``created_ns`` and ages (tests inject it).
        check_on_open: run ``PRAGMA quick_check`` when opening.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_rows: int | None = None,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        clock: Callable[[], int] = time.time_ns,
        check_on_open: bool = True,
    ) -> None:
        for name, bound in (("max_bytes", max_bytes), ("max_rows", max_rows)):
            if bound is not None and bound < 1:
                raise ValueError(f"{name} must be positive or None, got {bound}")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.synchronous = synchronous
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._acquire_process_lock()
        try:
            self._conn = self._open(check_on_open)
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- opening -----------------------------------------------------------------

    def _acquire_process_lock(self) -> int:
        # A sidecar file, not the database: closing any descriptor of the
        # database would drop SQLite's own POSIX locks held by this process.
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutboxLockedError(self.path) from None
        return fd

    def _open(self, check: bool) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as f:
                if f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                    raise OutboxCorruptError(self.path, "not an SQLite database")
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if check:
                result = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if result != ["ok"]:
                    raise OutboxCorruptError(self.path, "; ".join(result[:5]))
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise OutboxError(f"could not put {self.path} in WAL mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            # Let the WAL shrink back after a burst instead of staying at its peak.
            conn.execute("PRAGMA journal_size_limit=4194304")
            self._migrate(conn)
            self._depth, self._depth_bytes = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            conn.close()
            if getattr(exc, "sqlite_errorcode", None) in _CORRUPT_CODES:
                raise OutboxCorruptError(self.path, str(exc)) from exc
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, _SCHEMA_VERSION):
            raise OutboxError(
                f"{self.path} has outbox schema {version}; this code knows {_SCHEMA_VERSION}"
            )
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise OutboxCorruptError(self.path, "an SQLite database that is not an outbox")
        if version != _SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            script = (_SCHEMA if version == 0 else "") + _SCHEMA_2
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            # A new file, or one that never had an epoch: a new random one.
            conn.execute("INSERT INTO meta VALUES ('epoch', ?)", (secrets.token_hex(16),))
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        self.epoch: str = conn.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()[0]

    # -- transactions --------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """Hold the thread lock; report SQLite corruption as OutboxCorruptError."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorcode", None) in _CORRUPT_CODES:
                    raise OutboxCorruptError(self.path, str(exc)) from exc
                raise

    @staticmethod
    def _next_seq(conn: sqlite3.Connection, device: str) -> int:
        row = conn.execute("SELECT next_seq FROM device_seq WHERE device = ?", (device,)).fetchone()
        return FIRST_SEQ if row is None else int(row[0])

    # -- public API ----------------------------------------------------------------

    def next_seq(self, device: str) -> int:
        """The sequence number the next ``append`` for ``device`` must carry.

        Reading it reserves nothing: a number becomes used only when its
        message commits, so a crash between this call and ``append`` leaves
        no gap.
        """
        with self._locked() as conn:
            return self._next_seq(conn, device)

    def append(self, topic: str, payload: bytes, device: str, seq: int) -> int:
        """Store a message durably; return its id once committed.

        ``seq`` must equal :meth:`next_seq` for ``device`` (else
        :class:`SequenceError`); the device's counter advances in the same
        transaction. Oldest messages are evicted first if a bound would be
        exceeded (see the module docstring).
        """
        if not topic:
            raise ValueError("topic must not be empty")
        if not device:
            raise ValueError("device must not be empty")
        with self._locked() as conn:
            return self._append_locked(conn, topic, lambda _seq: payload, device, seq)[0]

    def append_next(
        self,
        topic: str,
        device: str,
        build: Callable[[int], bytes],
        *,
        journal_key: tuple[str, str] | None = None,
    ) -> tuple[int, int]:
        """Allocate the device's next sequence number and append in one step.

        ``build(seq)`` makes the payload (which usually embeds ``seq``); it runs
        inside the transaction, so it must be quick and must not touch this
        outbox. Returns ``(id, seq)``. Prefer this over ``next_seq`` +
        ``append`` when several threads produce for the same device.
        ``journal_key`` (device, stream): delete that open batch's journaled
        samples in the same transaction (they are now in this message).
        """
        if not topic:
            raise ValueError("topic must not be empty")
        if not device:
            raise ValueError("device must not be empty")
        with self._locked() as conn:
            return self._append_locked(conn, topic, build, device, None, journal_key)

    def _append_locked(
        self,
        conn: sqlite3.Connection,
        topic: str,
        build: Callable[[int], bytes],
        device: str,
        seq: int | None,
        journal_key: tuple[str, str] | None = None,
    ) -> tuple[int, int]:
        now = self._clock()
        with immediate(conn):
            if journal_key is not None:
                conn.execute("DELETE FROM journal WHERE device = ? AND stream = ?", journal_key)
            expected = self._next_seq(conn, device)
            if seq is not None and seq != expected:
                raise SequenceError(device, expected, seq)
            payload = bytes(build(expected))
            size = len(payload) + len(topic.encode())
            if self.max_bytes is not None and size > self.max_bytes:
                raise MessageTooLargeError(size, self.max_bytes)
            freed_rows, freed_bytes, evicted = self._evict_for(conn, size)
            cursor = conn.execute(
                "INSERT INTO outbox (device, seq, topic, payload, size, created_ns)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (device, expected, topic, payload, size, now),
            )
            conn.execute(
                "INSERT INTO device_seq (device, next_seq) VALUES (?, ?)"
                " ON CONFLICT (device) DO UPDATE SET next_seq = excluded.next_seq",
                (device, expected + 1),
            )
            row_id = cursor.lastrowid
        # Only after COMMIT: the in-memory totals never run ahead of the file.
        self._depth += 1 - freed_rows
        self._depth_bytes += size - freed_bytes
        if freed_rows:
            log.warning(
                "outbox full: evicted %d oldest messages (%d bytes): %s",
                freed_rows,
                freed_bytes,
                evicted,
            )
        assert row_id is not None
        return row_id, expected

    def _evict_for(self, conn: sqlite3.Connection, size: int) -> tuple[int, int, str]:
        """Delete the oldest rows so that one more of ``size`` fits the bounds."""
        over_rows = 0 if self.max_rows is None else self._depth + 1 - self.max_rows
        over_bytes = 0 if self.max_bytes is None else self._depth_bytes + size - self.max_bytes
        if over_rows <= 0 and over_bytes <= 0:
            return 0, 0, ""
        rows = freed = last_id = 0
        ranges: dict[str, list[int]] = {}
        while rows < over_rows or freed < over_bytes:
            # Small batches: no cursor stays open across the DELETE below.
            batch = conn.execute(
                "SELECT id, device, seq, size FROM outbox WHERE id > ? ORDER BY id LIMIT 64",
                (last_id,),
            ).fetchall()
            if not batch:
                break
            for row_id, device, seq, row_size in batch:
                if rows >= over_rows and freed >= over_bytes:
                    break
                rows += 1
                freed += row_size
                last_id = row_id
                span = ranges.setdefault(device, [seq, seq])
                span[0], span[1] = min(span[0], seq), max(span[1], seq)
        conn.execute("DELETE FROM outbox WHERE id <= ?", (last_id,))
        conn.execute(
            "UPDATE counters SET value = value + CASE name WHEN 'evicted' THEN ? ELSE ? END",
            (rows, freed),
        )
        detail = ", ".join(f"{d} seq {lo}..{hi}" for d, (lo, hi) in ranges.items())
        return rows, freed, detail

    def peek(self, limit: int, *, after_id: int = 0) -> list[OutboxMessage]:
        """Up to ``limit`` oldest messages with ``id > after_id``, in FIFO order.

        Peeking removes nothing; ``after_id`` lets a publisher page past
        messages it already has in flight.
        """
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT id, topic, payload, device, seq, created_ns, sent_ns FROM outbox"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxMessage(*row) for row in rows]

    def get(self, ids: Iterable[int]) -> list[OutboxMessage]:
        """The messages with these ids that are still stored, in id order."""
        wanted = sorted(set(ids))
        out: list[OutboxMessage] = []
        with self._locked() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                out += [
                    OutboxMessage(*row)
                    for row in conn.execute(
                        "SELECT id, topic, payload, device, seq, created_ns, sent_ns FROM outbox"
                        f" WHERE id IN ({marks}) ORDER BY id",
                        chunk,
                    )
                ]
        return out

    def mark_sent(self, ids: Iterable[int]) -> set[int]:
        """Record the broker's PUBACK for these rows (one transaction); return those still stored.

        A PUBACK only means the broker has the message (even reason 0x10, no
        matching subscribers): the row stays until :meth:`confirm`.
        """
        wanted = list(ids)
        if not wanted:
            return set()
        now = self._clock()
        present: set[int] = set()
        with self._locked() as conn, immediate(conn):
            for row_id in wanted:
                cursor = conn.execute("UPDATE outbox SET sent_ns = ? WHERE id = ?", (now, row_id))
                if cursor.rowcount:
                    present.add(row_id)
        return present

    def confirm(
        self,
        epoch: str | None,
        device: str,
        stored: Iterable[tuple[int, int]],
        dead: Iterable[tuple[int, int]] = (),
    ) -> list[int]:
        """Delete the rows a storage confirmation covers; return their ids.

        ``epoch`` must be this outbox's (else nothing matches: a confirmation
        for a replaced outbox) or ``None`` for rows from before schema 2.
        ``stored`` and ``dead`` are inclusive sequence ranges; ``dead`` ones
        were dead-lettered by processing and are counted as such.
        """
        if epoch is not None and epoch != self.epoch:
            return []
        legacy = 1 if epoch is None else 0
        deleted: list[int] = []
        freed = n_dead = 0
        with self._locked() as conn:
            with immediate(conn):
                for ranges, is_dead in ((stored, False), (dead, True)):
                    for lo, hi in ranges:
                        where = "device = ? AND seq BETWEEN ? AND ? AND legacy = ?"
                        args = (device, lo, hi, legacy)
                        rows = conn.execute(
                            f"SELECT id, size FROM outbox WHERE {where}", args
                        ).fetchall()
                        if not rows:
                            continue
                        conn.execute(f"DELETE FROM outbox WHERE {where}", args)
                        deleted += [r[0] for r in rows]
                        freed += sum(r[1] for r in rows)
                        n_dead += len(rows) if is_dead else 0
                if n_dead:
                    conn.execute(
                        "UPDATE counters SET value = value + ? WHERE name = 'confirmed_dead'",
                        (n_dead,),
                    )
            self._depth -= len(deleted)
            self._depth_bytes -= freed
        return deleted

    # -- batch journal ---------------------------------------------------------------

    def journal_add(self, rows: Iterable[tuple[str, str, str | None, str, str]]) -> None:
        """Journal samples of open batches: ``(device, stream, participant, topic, json)``.

        One transaction, not fsynced (``synchronous=NORMAL``): a process crash
        loses none of them, a power cut what came after the last :meth:`sync`.
        """
        batch = list(rows)
        if not batch:
            return
        with self._locked() as conn:
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                with immediate(conn):
                    conn.executemany(
                        "INSERT INTO journal (device, stream, participant, topic, sample)"
                        " VALUES (?, ?, ?, ?, ?)",
                        batch,
                    )
            finally:
                conn.execute(f"PRAGMA synchronous={self.synchronous}")

    def journal(self) -> list[JournalRow]:
        """Every journaled sample, oldest first (to reopen the batches after a restart)."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT id, device, stream, participant, topic, sample FROM journal ORDER BY id"
            ).fetchall()
        return [JournalRow(*row) for row in rows]

    def journal_clear(self, key: tuple[str, str]) -> None:
        """Forget the journaled samples of one (device, stream) batch."""
        with self._locked() as conn, immediate(conn):
            conn.execute("DELETE FROM journal WHERE device = ? AND stream = ?", key)

    def sync(self) -> None:
        """fsync the WAL: journal commits made since become power-cut safe."""
        wal = Path(f"{self.path}-wal")
        with self._lock:
            if self._lock_fd < 0 or not wal.exists():
                return
            fd = os.open(wal, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def delete(self, message_id: int) -> bool:
        """Remove a message by id; False if it is already gone.

        The publisher deletes through :meth:`confirm`; this is for tools and
        tests. Deleting an id that was evicted, or deleting twice, is harmless.
        """
        with self._locked() as conn:
            with immediate(conn):
                row = conn.execute("SELECT size FROM outbox WHERE id = ?", (message_id,)).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
            if row is None:
                return False
            self._depth -= 1
            self._depth_bytes -= row[0]
        return True

    def purge(self, topic_prefixes: tuple[str, ...]) -> int:
        """Delete every stored message whose topic starts with one of the prefixes.

        For erasure on request (a withdrawn participant's data must not leave
        the gateway). Counted as ``purged`` in :meth:`stats`, never as acked.
        Returns the number of messages; :meth:`erase` also reports the journal.
        """
        return self.erase(topic_prefixes)["messages"]

    def erase(self, topic_prefixes: tuple[str, ...], *, scrub: bool = True) -> dict[str, int]:
        """:meth:`purge` that leaves none of the deleted bytes on disk.

        The rows are deleted with ``secure_delete`` on (freed content zeroed);
        when anything was deleted, the WAL is checkpointed and truncated and
        the file vacuumed (:func:`collector.sqlitetx.scrub`), so neither the
        outbox file nor its ``-wal`` holds the messages any more. Returns
        ``{"messages": n, "journal": samples, "scrubbed": 0|1}``.
        """
        if not topic_prefixes:
            return {"messages": 0, "journal": 0, "scrubbed": 0}
        clause = " OR ".join("substr(topic, 1, ?) = ?" for _ in topic_prefixes)
        args = [v for prefix in topic_prefixes for v in (len(prefix), prefix)]
        with self._locked() as conn:
            with secure_delete(conn), immediate(conn):
                rows, size = conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox WHERE {clause}", args
                ).fetchone()
                conn.execute(f"DELETE FROM outbox WHERE {clause}", args)
                journal = conn.execute(f"DELETE FROM journal WHERE {clause}", args).rowcount
                conn.execute("INSERT OR IGNORE INTO counters VALUES ('purged', 0)")
                conn.execute("UPDATE counters SET value = value + ? WHERE name = 'purged'", (rows,))
            self._depth -= rows
            self._depth_bytes -= size
            scrubbed = scrub_file(conn) if scrub and (rows or journal) else False
        return {"messages": int(rows), "journal": int(journal), "scrubbed": int(scrubbed)}

    def stats(self) -> OutboxStats:
        """Lifetime counters, current depth and the age of the oldest message."""
        with self._locked() as conn:
            appended = conn.execute(
                "SELECT COALESCE(SUM(next_seq - ?), 0) FROM device_seq", (FIRST_SEQ,)
            ).fetchone()[0]
            counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            oldest = conn.execute("SELECT created_ns FROM outbox ORDER BY id LIMIT 1").fetchone()
            sent = conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_ns IS NOT NULL").fetchone()[
                0
            ]
            journal = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
            depth, depth_bytes = self._depth, self._depth_bytes
        evicted = counters["evicted"]
        purged = counters.get("purged", 0)
        return OutboxStats(
            appended=appended,
            # Every appended message is acked, evicted, purged or still queued.
            acked=appended - evicted - purged - depth,
            evicted=evicted,
            evicted_bytes=counters["evicted_bytes"],
            depth=depth,
            depth_bytes=depth_bytes,
            # Clamped: the wall clock may step back (NTP) after the append.
            oldest_age_s=None if oldest is None else max(0, self._clock() - oldest[0]) / 1e9,
            purged=purged,
            sent=sent,
            confirmed_dead=counters.get("confirmed_dead", 0),
            journal=journal,
        )

    def close(self) -> None:
        """Close the database and release the process lock (idempotent)."""
        with self._lock:
            if self._lock_fd < 0:
                return
            self._conn.close()
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
