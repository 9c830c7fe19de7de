"""No Bluetooth address in a log line or a stored status detail."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from collector import ble_events as ev
from collector import redact, wire
from collector.logs import configure
from tests.unit.test_collector_ingest import T0, _messages, _setup


def test_every_spelling_of_an_address_is_replaced() -> None:
    text = (
        "Device with address C0:FF:EE:00:00:01 was not found; "
        "/org/bluez/hci0/dev_C0_FF_EE_00_00_02 failed; c0-ff-ee-00-00-03"
    )
    assert redact.addresses(text) == (
        "Device with address <address> was not found; "
        "/org/bluez/hci0/dev_<address> failed; <address>"
    )
    # Not addresses: times, UUIDs, epochs.
    for other in ("17:31:00.123Z", "0000180d-0000-1000-8000-00805f9b34fb", "0123456789abcdef"):
        assert redact.addresses(other) == other


def test_log_lines_carry_no_address() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("info", stream)
        logging.getLogger("collector.ble").warning(
            "connect failed", extra={"error": "BleakError: dev_AA_BB_CC_DD_EE_FF not found"}
        )
        logging.getLogger("collector.x").warning("scan %s", "AA:BB:CC:DD:EE:FF")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    out = stream.getvalue()
    assert "AA" not in out and out.count("<address>") == 2


def test_status_details_carry_no_address(tmp_path: Path) -> None:
    ingest, outbox, batcher = _setup(tmp_path)
    reason = "BleakDeviceNotFoundError: Device with address C0:FF:EE:00:00:01 was not found"
    ingest.handle(ev.ConnectFailed(T0, "chest", "C0:FF:EE:00:00:01", 3, reason))
    ingest.handle(ev.SensorDisconnected(T0, "chest", "C0:FF:EE:00:00:01", 1, reason, False))
    batcher.flush_all()
    details = [
        s.detail
        for m in _messages(outbox)
        for s in m.samples
        if isinstance(s, wire.StatusSample)
    ]
    assert len(details) == 2
    assert all("C0:FF" not in d and "<address>" in d for d in details)
