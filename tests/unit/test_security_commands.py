"""Gateway withdrawal and erasure commands, the outbox purge and sd_notify."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from collector import sdnotify
from collector.commands import (
    Command,
    CommandError,
    CommandHandler,
    Withdrawal,
    WithdrawalStore,
    decode_command,
    encode_command,
)
from collector.outbox import Outbox

STUDY, GW = "pilot", "gw-1"


def _command(*withdraw: Withdrawal, cid: str = "c-1") -> bytes:
    return encode_command(Command(cid, STUDY, GW, 1_700_000_000_000_000_000, withdraw))


def _fill(outbox: Outbox, participant: str, n: int) -> None:
    for _ in range(n):
        outbox.append_next(
            f"wellsense/v1/{STUDY}/{participant}/hr", f"d-{participant}", lambda seq: b"x" * 10
        )


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    withdrawn: list[frozenset[str]] = []
    acks: list[dict[str, Any]] = []
    handler = CommandHandler(
        study=STUDY,
        gateway=GW,
        store=WithdrawalStore(tmp_path),
        outbox=outbox,
        on_withdraw=withdrawn.append,
        acknowledge=acks.append,
        clock_ns=lambda: 42,
    )
    yield handler, outbox, withdrawn, acks
    outbox.close()


def test_round_trip_and_addressing() -> None:
    payload = _command(Withdrawal("p-1", True))
    assert decode_command(payload, study=STUDY, gateway=GW).withdraw == (Withdrawal("p-1", True),)
    with pytest.raises(CommandError):
        decode_command(payload, study=STUDY, gateway="gw-2")
    for bad in (
        b"",
        b"[]",
        b"{",
        json.dumps({"schema": "x"}).encode(),
        payload.replace(b'"p-1"', b'"P 1"'),
        payload.replace(b"true", b"1"),
    ):
        with pytest.raises(CommandError):
            decode_command(bad, study=STUDY, gateway=GW)


def test_erase_sets_a_durable_flag_stops_collection_and_purges_only_that_participant(
    setup: Any, tmp_path: Path
) -> None:
    handler, outbox, withdrawn, acks = setup
    _fill(outbox, "p-1", 5)
    _fill(outbox, "p-2", 3)
    handler(_command(Withdrawal("p-1", True)))
    assert withdrawn == [frozenset({"p-1"})]
    assert acks[-1] == {
        "id": "c-1",
        "withdrawn": ["p-1"],
        "purged": {"p-1": 5},
        "journal_purged": {"p-1": 0},
        "scrubbed": {"p-1": 1},
    }
    stats = outbox.stats()
    assert (stats.depth, stats.purged, stats.acked) == (3, 5, 0)
    assert {m.topic for m in outbox.peek(10)} == {f"wellsense/v1/{STUDY}/p-2/hr"}
    assert WithdrawalStore(tmp_path).withdrawn() == {"p-1"}  # survives a restart
    # The same retained command again: nothing new to stop, nothing left to purge.
    handler(_command(Withdrawal("p-1", True)))
    assert withdrawn == [frozenset({"p-1"})]
    assert acks[-1]["purged"] == {"p-1": 0}


def test_erase_leaves_no_byte_of_the_participant_in_the_outbox_file_or_its_wal(
    setup: Any, tmp_path: Path
) -> None:
    handler, outbox, _withdrawn, acks = setup
    for _ in range(40):
        outbox.append_next(
            f"wellsense/v1/{STUDY}/p-secret1/hr", "d-a", lambda seq: b'{"p":"p-secret1"}' * 20
        )
        outbox.append_next(f"wellsense/v1/{STUDY}/p-2/hr", "d-b", lambda seq: b"y" * 300)
    outbox.journal_add([("d-a", "hr", "p-secret1", f"wellsense/v1/{STUDY}/p-secret1/hr", "{}")])
    files = [tmp_path / "outbox.sqlite3", tmp_path / "outbox.sqlite3-wal"]
    assert any(b"p-secret1" in f.read_bytes() for f in files if f.exists())
    handler(_command(Withdrawal("p-secret1", True)))
    assert acks[-1]["purged"] == {"p-secret1": 40}
    assert acks[-1]["journal_purged"] == {"p-secret1": 1}
    assert acks[-1]["scrubbed"] == {"p-secret1": 1}
    for f in files:
        if f.exists():
            assert b"p-secret1" not in f.read_bytes(), f
    assert outbox.stats().depth == 40  # the other participant's messages stay


def test_withdraw_without_erase_keeps_the_outbox_then_erase_purges(setup: Any) -> None:
    handler, outbox, withdrawn, acks = setup
    _fill(outbox, "p-1", 2)
    handler(_command(Withdrawal("p-1", False)))
    assert outbox.stats().depth == 2 and acks[-1]["purged"] == {}
    handler(_command(Withdrawal("p-1", True), cid="c-2"))
    assert outbox.stats().depth == 0 and acks[-1]["purged"] == {"p-1": 2}
    assert withdrawn == [frozenset({"p-1"}), frozenset({"p-1"})]


def test_bad_or_foreign_commands_change_nothing(setup: Any) -> None:
    handler, _outbox, withdrawn, acks = setup
    handler(b"not json")
    handler(b"")
    handler(encode_command(Command("c", STUDY, "gw-other", 1, (Withdrawal("p-1", True),))))
    assert withdrawn == [] and acks == []


def test_an_unreadable_flag_file_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "withdrawn.json").write_text("{garbage")
    with pytest.raises(CommandError, match="unreadable"):
        WithdrawalStore(tmp_path).load()


def test_sd_notify_sends_datagrams_only_under_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.watchdog_interval_s() is None
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "30000000")
        assert sdnotify.notify("READY=1")
        assert server.recv(64) == b"READY=1"
    assert sdnotify.watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert sdnotify.watchdog_interval_s() is None
