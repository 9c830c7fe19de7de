"""Erasure covers processing's durable dead-letter store, bytes included."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from processing.admin import participant as admin_participant
from processing.admin.settings import ErasureSettings
from processing.deadletterstore import DeadLetterStore

SECRET = b"p-erase01-marker-bytes"


@dataclasses.dataclass
class _Config:
    erasure: ErasureSettings


def _store(path: Path) -> None:
    store = DeadLetterStore(path)
    try:
        for who, payload in (("p-erase01", SECRET * 20), ("p-keep0001", b"x" * 400)):
            for i in range(3):
                store.add(received_ns=10**18 + i, kind="message", reason="bad_json",
                          field="", error="bad", topic=f"wellsense/v1/s/{who}/hr",
                          worker="w1", payload=payload)
    finally:
        store.close()


def test_erasure_deletes_the_participants_dead_letters_and_their_bytes(tmp_path: Path) -> None:
    path = tmp_path / "deadletter.sqlite"
    _store(path)
    config = _Config(ErasureSettings(tmp_path / "t", tmp_path / "n", tmp_path / "e", path))
    dry = admin_participant.erase_deadletters(config, "p-erase01", dry_run=True)  # type: ignore[arg-type]
    assert dry == 3
    assert SECRET in path.read_bytes() + _wal(path)  # a dry run changes nothing
    done = admin_participant.erase_deadletters(config, "p-erase01", dry_run=False)  # type: ignore[arg-type]
    assert done == 3
    store = DeadLetterStore(path)
    try:
        assert store.count_participant("p-erase01") == 0
        assert store.count_participant("p-keep0001") == 3
    finally:
        store.close()
    assert SECRET not in path.read_bytes() + _wal(path)


def test_no_store_on_this_host_is_reported_as_none(tmp_path: Path) -> None:
    config = _Config(ErasureSettings(tmp_path / "t", tmp_path / "n", tmp_path / "e",
                                     tmp_path / "absent.sqlite"))
    assert admin_participant.erase_deadletters(config, "p-1", dry_run=False) is None  # type: ignore[arg-type]


def _wal(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""
