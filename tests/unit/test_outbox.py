"""Tests for collector.outbox: FIFO, sequence numbers, bounds, threads, corruption, SIGKILL."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.outbox import (
    FIRST_SEQ,
    MessageTooLargeError,
    Outbox,
    OutboxCorruptError,
    OutboxError,
    OutboxLockedError,
    SequenceError,
)

TOPIC = "wellsense/v1/study1/p001/hr"


class FakeClock:
    def __init__(self) -> None:
        self.ns = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.sqlite"


@pytest.fixture
def outbox(db: Path) -> Iterator[Outbox]:
    with Outbox(db) as box:
        yield box


def _append(box: Outbox, device: str, payload: bytes = b"{}") -> int:
    return box.append(TOPIC, payload, device, box.next_seq(device))


# -- FIFO and acknowledgement ------------------------------------------------------------


def test_append_peek_delete_in_fifo_order(outbox: Outbox) -> None:
    ids = [_append(outbox, "dev-a", f"m{i}".encode()) for i in range(5)]
    assert ids == sorted(ids)

    peeked = outbox.peek(3)
    assert [m.id for m in peeked] == ids[:3]
    assert [m.payload for m in peeked] == [b"m0", b"m1", b"m2"]
    assert [m.seq for m in peeked] == [0, 1, 2]
    assert peeked[0].topic == TOPIC and peeked[0].device == "dev-a"
    assert [m.id for m in outbox.peek(10, after_id=ids[2])] == ids[3:]

    assert outbox.delete(ids[1]) is True
    assert outbox.delete(ids[1]) is False  # duplicate PUBACK is harmless
    assert [m.id for m in outbox.peek(10)] == [ids[0], *ids[2:]]


def test_ids_are_never_reused_after_the_queue_empties(outbox: Outbox) -> None:
    first = _append(outbox, "dev-a")
    outbox.delete(first)
    assert _append(outbox, "dev-a") > first


def test_wal_mode_is_on(outbox: Outbox, db: Path) -> None:
    _append(outbox, "dev-a")
    with sqlite3.connect(db) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- sequence numbers ------------------------------------------------------------------


def test_sequence_numbers_are_per_device_and_start_at_first_seq(outbox: Outbox) -> None:
    assert outbox.next_seq("dev-a") == FIRST_SEQ == 0
    _append(outbox, "dev-a")
    _append(outbox, "dev-a")
    _append(outbox, "dev-b")
    assert outbox.next_seq("dev-a") == 2
    assert outbox.next_seq("dev-b") == 1


@pytest.mark.parametrize("wrong", [-1, 0, 2, 10])
def test_append_refuses_a_reused_or_skipped_number(outbox: Outbox, wrong: int) -> None:
    _append(outbox, "dev-a")  # seq 0 used; 1 is next
    with pytest.raises(SequenceError) as err:
        outbox.append(TOPIC, b"{}", "dev-a", wrong)
    assert (err.value.device, err.value.expected, err.value.got) == ("dev-a", 1, wrong)
    assert outbox.stats().depth == 1


def test_sequence_survives_restart_and_acknowledgement(db: Path) -> None:
    with Outbox(db) as box:
        ids = [_append(box, "dev-a") for _ in range(3)]
        for message_id in ids:
            box.delete(message_id)
    with Outbox(db) as box:
        assert box.stats().depth == 0
        assert box.next_seq("dev-a") == 3  # acked rows are gone, their numbers stay used


def test_append_next_allocates_and_builds_atomically(outbox: Outbox) -> None:
    message_id, seq = outbox.append_next(TOPIC, "dev-a", lambda s: f'{{"seq":{s}}}'.encode())
    assert seq == 0
    assert outbox.peek(1)[0].payload == b'{"seq":0}'

    def broken(_seq: int) -> bytes:
        raise RuntimeError("encoder bug")

    with pytest.raises(RuntimeError):
        outbox.append_next(TOPIC, "dev-a", broken)
    assert outbox.next_seq("dev-a") == 1  # the failed build consumed nothing
    assert outbox.append_next(TOPIC, "dev-a", lambda s: b"x") == (message_id + 1, 1)


# -- bounds, eviction and counters ----------------------------------------------------------


def test_row_bound_evicts_oldest_and_counts(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Outbox(db, max_rows=3) as box:
        for _ in range(5):
            _append(box, "dev-a")
        with caplog.at_level(logging.WARNING, logger="collector.outbox"):
            _append(box, "dev-b")
        assert [(m.device, m.seq) for m in box.peek(10)] == [
            ("dev-a", 3),
            ("dev-a", 4),
            ("dev-b", 0),
        ]
        stats = box.stats()
    assert (stats.appended, stats.evicted, stats.depth, stats.acked) == (6, 3, 3, 0)
    assert "evicted 1 oldest" in caplog.text and "dev-a seq 2..2" in caplog.text


def test_byte_bound_evicts_enough_oldest(db: Path) -> None:
    size = len(TOPIC) + 100
    with Outbox(db, max_bytes=3 * size) as box:
        for _ in range(3):
            _append(box, "dev-a", bytes(100))
        _append(box, "dev-a", bytes(150))  # needs two slots freed
        assert [m.seq for m in box.peek(10)] == [2, 3]
        stats = box.stats()
    assert stats.evicted == 2 and stats.evicted_bytes == 2 * size
    assert stats.depth_bytes == size + len(TOPIC) + 150


def test_message_larger_than_the_bound_is_refused(db: Path) -> None:
    with Outbox(db, max_bytes=1000) as box:
        _append(box, "dev-a")
        with pytest.raises(MessageTooLargeError):
            _append(box, "dev-a", bytes(1000))
        assert box.next_seq("dev-a") == 1 and box.stats().depth == 1


def test_counters_and_oldest_age_survive_restart(db: Path) -> None:
    clock = FakeClock()
    with Outbox(db, max_rows=2, clock=clock) as box:
        assert box.stats().oldest_age_s is None
        first = _append(box, "dev-a")
        clock.ns += 1_000_000_000
        for _ in range(2):
            _append(box, "dev-a")  # evicts `first`
        box.delete(box.peek(1)[0].id)
        clock.ns += 2_500_000_000
        assert box.stats().oldest_age_s == pytest.approx(2.5)
        assert box.delete(first) is False  # PUBACK after eviction
    with Outbox(db, clock=clock) as box:
        stats = box.stats()
    assert (stats.appended, stats.acked, stats.evicted, stats.depth) == (3, 1, 1, 1)
    assert stats.appended == stats.acked + stats.evicted + stats.depth


# -- threads and processes ---------------------------------------------------------------


def test_concurrent_appends_and_acks_from_threads(outbox: Outbox) -> None:
    per_device = 100
    devices = [f"dev-{i}" for i in range(3)]
    done = threading.Event()
    acked: list[int] = []

    def produce(device: str) -> None:
        for _ in range(per_device):
            outbox.append_next(TOPIC, device, lambda s: str(s).encode())

    def ack() -> None:  # plays paho's network thread
        while not done.is_set() or outbox.stats().depth:
            for message in outbox.peek(20):
                if outbox.delete(message.id):
                    acked.append(message.seq)

    producers = [threading.Thread(target=produce, args=(d,)) for d in devices]
    acker = threading.Thread(target=ack)
    acker.start()
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    done.set()
    acker.join(timeout=30)

    stats = outbox.stats()
    assert stats.appended == stats.acked == len(acked) == per_device * len(devices)
    assert stats.depth == 0
    assert all(outbox.next_seq(d) == per_device for d in devices)


def test_second_opener_is_refused(db: Path) -> None:
    with Outbox(db), pytest.raises(OutboxLockedError):
        Outbox(db)
    Outbox(db).close()  # released on close


_CHILD = """
import sys
from collector.outbox import Outbox
box = Outbox(sys.argv[1], synchronous=sys.argv[2])
devices = ("dev-a", "dev-b")
i = 0
while True:
    device = devices[i % 2]
    seq = box.next_seq(device)
    message_id = box.append("t", b"x" * (i % 300), device, seq)
    print(message_id, device, seq, flush=True)  # only after append returned
    i += 1
"""


def _run_and_sigkill(db: Path, synchronous: str, lines: int) -> list[tuple[int, str, int]]:
    """Start a child appending in a loop, SIGKILL it after it confirmed ``lines`` appends."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db), synchronous],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    confirmed = []
    try:
        for line in child.stdout:
            message_id, device, seq = line.split()
            confirmed.append((int(message_id), device, int(seq)))
            if len(confirmed) >= lines:
                break
    finally:
        child.send_signal(signal.SIGKILL)  # mid-append, most likely
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return confirmed


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_sigkill_loses_no_committed_message_and_reuses_no_number(
    db: Path, synchronous: str
) -> None:
    confirmed: list[tuple[int, str, int]] = []
    for _round in range(2):  # crash, restart, crash again
        confirmed += _run_and_sigkill(db, synchronous, lines=150)

        with Outbox(db) as box:
            rows = box.peek(100_000)
            stored = [(m.id, m.device, m.seq) for m in rows]
            # every confirmed append is there, byte for byte where we can tell
            assert set(confirmed) <= set(stored)
            # FIFO order is append order: ids and per-device seqs both increase
            assert [r[0] for r in stored] == sorted(r[0] for r in stored)
            for device in ("dev-a", "dev-b"):
                seqs = [seq for _id, d, seq in stored if d == device]
                assert seqs == list(range(len(seqs)))  # no reuse, no gap
                assert box.next_seq(device) == len(seqs)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- corruption ----------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_garbage_file_is_reported_and_left_alone(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database\n" * 200)
    before = _digest(db)
    with pytest.raises(OutboxCorruptError, match="NOT modified") as err:
        Outbox(db)
    assert err.value.path == db
    assert _digest(db) == before


def test_damaged_page_is_reported_and_left_alone(db: Path) -> None:
    with Outbox(db) as box:
        for i in range(400):
            _append(box, f"dev-{i % 7}", os.urandom(200))
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 6 * page
    raw[3 * page : 5 * page] = os.urandom(2 * page)  # two b-tree pages of noise
    db.write_bytes(bytes(raw))
    before = _digest(db)
    with pytest.raises(OutboxCorruptError):
        Outbox(db)
    assert _digest(db) == before


def test_corruption_found_while_running_is_reported(db: Path) -> None:
    with Outbox(db) as box:
        for _ in range(100):
            _append(box, "dev-a", os.urandom(200))
    raw = bytearray(db.read_bytes())
    raw[4096:] = os.urandom(len(raw) - 4096)  # keep the header page, ruin the rest
    db.write_bytes(bytes(raw))
    # at open (the depth query) or at the first read, never as a bare sqlite3 error
    with pytest.raises(OutboxCorruptError), Outbox(db, check_on_open=False) as box:
        box.peek(1000)


def test_foreign_sqlite_database_is_not_adopted(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(OutboxCorruptError, match="not an outbox"):
        Outbox(db)


def test_newer_schema_is_refused(db: Path) -> None:
    Outbox(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(OutboxError, match="schema 99"):
        Outbox(db)


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"max_bytes": 0}, {"max_rows": -1}, {"synchronous": "OFF"}],
)
def test_bad_configuration_names_the_option(db: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Outbox(db, **kwargs)  # type: ignore[arg-type]


def test_bad_arguments(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="topic"):
        outbox.append("", b"", "dev-a", 0)
    with pytest.raises(ValueError, match="device"):
        outbox.append(TOPIC, b"", "", 0)
    with pytest.raises(ValueError, match="limit"):
        outbox.peek(0)


def test_outbox_imports_only_the_standard_library() -> None:
    code = (
        "import sys, collector.outbox;"
        "bad = {'bleak', 'numpy', 'scipy', 'influxdb_client', 'paho'};"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- end-to-end delivery: appended -> sent -> confirmed ---------------------------------


def test_row_is_sent_on_puback_and_deleted_only_by_a_confirmation(outbox: Outbox) -> None:
    ids = [_append(outbox, "dev-a", f"m{i}".encode()) for i in range(4)]
    assert [m.sent_ns for m in outbox.peek(10)] == [None] * 4
    assert outbox.mark_sent(ids[:3]) == set(ids[:3])
    stats = outbox.stats()
    assert (stats.depth, stats.sent, stats.acked) == (4, 3, 0)
    assert [m.sent_ns is not None for m in outbox.peek(10)] == [True, True, True, False]
    # Confirmations for another outbox (epoch) or another device delete nothing.
    assert outbox.confirm("0" * 32, "dev-a", [(0, 3)]) == []
    assert outbox.confirm(outbox.epoch, "dev-b", [(0, 3)]) == []
    assert outbox.confirm(None, "dev-a", [(0, 3)]) == []  # legacy rows only
    assert outbox.confirm(outbox.epoch, "dev-a", [(0, 1)], [(3, 3)]) == [ids[0], ids[1], ids[3]]
    stats = outbox.stats()
    assert (stats.depth, stats.sent, stats.acked, stats.confirmed_dead) == (1, 1, 3, 1)
    assert [m.seq for m in outbox.peek(10)] == [2]
    # A repeated confirmation is harmless; a PUBACK for a deleted row reports it gone.
    assert outbox.confirm(outbox.epoch, "dev-a", [(0, 3)]) == [ids[2]]
    assert outbox.mark_sent([ids[0]]) == set()
    assert outbox.stats().depth == 0


def test_unconfirmed_rows_survive_a_restart_with_their_state(db: Path) -> None:
    with Outbox(db) as box:
        ids = [_append(box, "dev-a") for _ in range(3)]
        box.mark_sent(ids[:2])
        epoch = box.epoch
    with Outbox(db) as box:
        assert box.epoch == epoch, "the epoch is stored in the file"
        assert [m.sent_ns is not None for m in box.peek(10)] == [True, True, False]
        assert [m.id for m in box.get([ids[2], ids[0], 999])] == [ids[0], ids[2]]
        assert box.confirm(epoch, "dev-a", [(0, 2)]) == ids


def test_a_new_file_gets_a_new_random_epoch(tmp_path: Path) -> None:
    epochs = set()
    for i in range(3):
        with Outbox(tmp_path / f"o{i}.sqlite") as box:
            assert re.fullmatch(r"[0-9a-f]{32}", box.epoch)
            epochs.add(box.epoch)
    assert len(epochs) == 3


def test_schema_1_outbox_is_migrated_and_its_rows_confirmed_without_epoch(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL,
            seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
            size INTEGER NOT NULL, created_ns INTEGER NOT NULL);
        CREATE TABLE device_seq (device TEXT PRIMARY KEY, next_seq INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO counters VALUES ('evicted', 0), ('evicted_bytes', 0);
        INSERT INTO outbox VALUES (1, 'dev-a', 0, 't/x', x'7b7d', 5, 1),
            (2, 'dev-a', 1, 't/x', x'7b7d', 5, 1);
        INSERT INTO device_seq VALUES ('dev-a', 2);
        PRAGMA user_version = 1;
        """
    )
    conn.close()
    with Outbox(db) as box:
        new_id = _append(box, "dev-a")
        assert box.confirm(box.epoch, "dev-a", [(0, 2)]) == [new_id], "old rows carry no epoch"
        assert box.confirm(None, "dev-a", [(0, 2)]) == [1, 2]
        assert box.stats().depth == 0


def test_journal_rows_leave_in_the_transaction_that_commits_their_batch(outbox: Outbox) -> None:
    outbox.journal_add(
        [
            ("dev-a", "hr", "p001", TOPIC, '{"n":1}'),
            ("dev-a", "hr", "p001", TOPIC, '{"n":2}'),
            ("dev-a", "activity", "p001", TOPIC, '{"n":3}'),
        ]
    )
    assert [r.sample for r in outbox.journal()] == ['{"n":1}', '{"n":2}', '{"n":3}']
    outbox.append_next(TOPIC, "dev-a", lambda seq: b"{}", journal_key=("dev-a", "hr"))
    assert [(r.stream, r.sample) for r in outbox.journal()] == [("activity", '{"n":3}')]
    outbox.sync()
    assert outbox.stats().journal == 1
    outbox.purge(("wellsense/v1/study1/p001/",))
    assert outbox.journal() == []


def test_journal_add_is_not_fsynced_but_survives_sigkill(db: Path) -> None:
    code = (
        "import os, signal, sys; from collector.outbox import Outbox;"
        f"box = Outbox({str(db)!r});"
        "box.journal_add([('dev-a', 'hr', 'p1', 't', '{}')] * 5);"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    with Outbox(db) as box:
        assert len(box.journal()) == 5
        box.journal_add([("dev-a", "hr", "p1", "t", "{}")])
        # Only the journal commit ran with NORMAL: messages are fsynced again.
        assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
