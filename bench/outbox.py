"""Cost of the collector's pure core, each number next to a named peer, as JSON.

* Parsing: ``collector.gatt.parse_heart_rate_measurement`` against a minimal
  ``struct``-based parser with no validation (the least any parser must do).
* Outbox: ``collector.outbox.Outbox`` append / delete with
  ``synchronous=FULL`` and ``NORMAL`` against an append-only log file that
  writes a length-prefixed record per append and a tombstone per ack, with
  and without ``os.fsync``.
* Delivery: the end-to-end acknowledgement path per message (``mark_sent``
  for a turn's PUBACKs + ``confirm`` of a stored range, both batched) against
  the peer ``delete`` per PUBACK that it replaced.
* Batch journal: ``Batcher.add`` + ``journal_flush`` per sample (the worst
  case: every notification its own journal commit) against the same batcher
  without journal commits (open batches in memory only, as before the
  journal), with the CPU time and the bytes written (``wchar`` of
  /proc/self/io) per sample.

Run: ``.venv/bin/python bench/outbox.py [--n 2000] [--dir DIR]``. Outbox
numbers depend on the disk under ``--dir`` (default: a temporary directory);
on a Raspberry Pi, point it at the SD card the gateway uses.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from collector import wire
from collector.batcher import Batcher, Route
from collector.gatt import parse_heart_rate_measurement
from collector.outbox import Outbox

NOTIFICATIONS = {
    "hr8_contact": bytes.fromhex("063c"),
    "hr8_contact_rr1": bytes.fromhex("163c1104"),
    "hr8_rr2": bytes.fromhex("10500003 0003"),
    "hr16_energy_rr3": bytes.fromhex("19 4800 3412 0004 e803 f503"),
}


def peer_struct_parse(data: bytes) -> tuple[int, int | None, tuple[float, ...]]:
    """Peer: the minimal struct parser, no length or trailing-octet checks."""
    flags = data[0]
    if flags & 0x01:
        (hr,) = struct.unpack_from("<H", data, 1)
        offset = 3
    else:
        hr = data[1]
        offset = 2
    energy = None
    if flags & 0x08:
        (energy,) = struct.unpack_from("<H", data, offset)
        offset += 2
    rr: tuple[float, ...] = ()
    if flags & 0x10:
        count = (len(data) - offset) // 2
        rr = tuple(v * 1000 / 1024 for v in struct.unpack_from(f"<{count}H", data, offset))
    return hr, energy, rr


def _best_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def bench_parse(number: int = 100_000) -> dict[str, dict[str, float]]:
    out = {}
    for name, payload in NOTIFICATIONS.items():
        gatt_us = _best_us(functools.partial(parse_heart_rate_measurement, payload), number)
        peer_us = _best_us(functools.partial(peer_struct_parse, payload), number)
        out[name] = {"gatt_us": round(gatt_us, 3), "peer_struct_us": round(peer_us, 3)}
    return out


def _summary(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {
        "mean_us": round(statistics.fmean(ordered) / 1e3, 1),
        "p50_us": round(ordered[len(ordered) // 2] / 1e3, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] / 1e3, 1),
    }


def _timed(op: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    op()
    return time.perf_counter_ns() - start


def bench_outbox(directory: Path, synchronous: str, n: int, payload: bytes) -> dict[str, object]:
    path = directory / f"outbox-{synchronous.lower()}.sqlite"
    with Outbox(path, synchronous=synchronous, max_bytes=None) as box:  # type: ignore[arg-type]
        topic = "wellsense/v1/study1/p001/hr"
        appends = [
            _timed(lambda: box.append(topic, payload, "dev-a", box.next_seq("dev-a")))
            for _ in range(n)
        ]
        ids = [m.id for m in box.peek(n)]
        deletes = [_timed(functools.partial(box.delete, i)) for i in ids]
    return {"append": _summary(appends), "delete": _summary(deletes)}


def bench_delivery(directory: Path, n: int, payload: bytes, turn: int = 10) -> dict[str, object]:
    """Per message: mark_sent + confirm in groups of ``turn``, vs one delete per ack."""
    topic = "wellsense/v1/study1/p001/hr"
    out: dict[str, object] = {"messages_per_turn": turn}
    for variant in ("e2e_mark_sent_confirm", "peer_delete_per_puback"):
        with Outbox(directory / f"delivery-{variant}.sqlite", max_bytes=None) as box:
            ids = [box.append(topic, payload, "dev-a", box.next_seq("dev-a")) for _ in range(n)]
            per_message: list[int] = []
            for start in range(0, n, turn):
                group = ids[start : start + turn]
                if variant == "peer_delete_per_puback":
                    elapsed = sum(_timed(functools.partial(box.delete, i)) for i in group)
                else:
                    elapsed = _timed(functools.partial(box.mark_sent, group))
                    seqs = [(start, start + len(group) - 1)]
                    elapsed += _timed(functools.partial(box.confirm, box.epoch, "dev-a", seqs))
                per_message += [elapsed // len(group)] * len(group)
            assert box.stats().depth == 0
        out[variant] = _summary(per_message)
    return out


def _wchar() -> int:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def bench_journal(directory: Path, n: int) -> dict[str, object]:
    """Per HR sample: add (+ journal_flush) in a 120-sample batcher, FULL outbox."""
    route = Route("p001", "dev-a")
    out: dict[str, object] = {"note": "one journal commit per sample; batches of 120 samples"}
    for variant in ("journal_commit_per_sample", "peer_memory_only"):
        with Outbox(directory / f"journal-{variant}.sqlite", max_bytes=None) as box:
            batcher = Batcher(
                box,
                "study1",
                "gw-1",
                lambda: wire.ClockQuality(True, "ntp", 5.0),
                max_samples=120,
                max_interval_s=1e9,
            )
            journal = variant == "journal_commit_per_sample"
            t0 = 1_764_000_000 * 10**9
            samples = [
                wire.HrSample(t0 + i * 10**9, 60 + i % 40, True, None, (812.5, 798.828125))
                for i in range(n)
            ]
            times: list[int] = []
            cpu0, wchar0 = time.process_time(), _wchar()
            for sample in samples:
                start = time.perf_counter_ns()
                batcher.add(route, "hr", sample)
                if journal:
                    batcher.journal_flush()
                times.append(time.perf_counter_ns() - start)
            cpu_s, wchar = time.process_time() - cpu0, _wchar() - wchar0
            batcher.flush_all()
        out[variant] = {
            **_summary(times),
            "cpu_us_per_sample": round(cpu_s / n * 1e6, 1),
            "bytes_written_per_sample": round(wchar / n, 1) if wchar0 >= 0 else None,
        }
    return out


def bench_log_peer(directory: Path, fsync: bool, n: int, payload: bytes) -> dict[str, object]:
    """Peer: an append-only log, record = u32 length + bytes; ack = 9-byte tombstone."""
    path = directory / f"peer-{'fsync' if fsync else 'nofsync'}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:

        def write(record: bytes) -> None:
            os.write(fd, record)
            if fsync:
                os.fsync(fd)

        record = struct.pack("<I", len(payload)) + payload
        appends = [_timed(lambda: write(record)) for _ in range(n)]
        tombstones = [b"\xff" + struct.pack("<Q", i) for i in range(n)]
        deletes = [_timed(functools.partial(write, t)) for t in tombstones]
    finally:
        os.close(fd)
    return {"append": _summary(appends), "delete": _summary(deletes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="appends/deletes per variant")
    parser.add_argument("--payload-bytes", type=int, default=512, help="message size")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    args = parser.parse_args(argv)
    payload = os.urandom(args.payload_bytes)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        result = {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "dir": str(directory),
            "parse_hrm_per_notification": bench_parse(),
            "outbox": {
                "n": args.n,
                "note": "append = next_seq() + append(), one commit; delete = one commit per ack",
                "payload_bytes": args.payload_bytes,
                "sqlite_wal_synchronous_full": bench_outbox(directory, "FULL", args.n, payload),
                "sqlite_wal_synchronous_normal": bench_outbox(directory, "NORMAL", args.n, payload),
                "peer_append_log_fsync": bench_log_peer(directory, True, args.n, payload),
                "peer_append_log_no_fsync": bench_log_peer(directory, False, args.n, payload),
            },
            "delivery": bench_delivery(directory, args.n, payload),
            "journal": bench_journal(directory, args.n),
        }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
