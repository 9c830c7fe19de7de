"""Supervision: a failing or stuck publisher stops the watchdog; a full disk stops the collector.

For the full disk the outbox lives on a real 1 MiB tmpfs (mounted for the
test; root needed, else those tests skip) that is then filled to the last byte.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.outbox import Outbox
from collector.publisher import Publisher
from collector.tomlconfig import MqttSettings
from tests.conftest import scratch_dir
from tests.integration.harness import Collector, Emulator, wait_until, write_collector_config
from wellsense_cli.localservices import Mosquitto

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    directory = scratch_dir("diskfull")
    mount = directory / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> None:
    """Write a filler file until the file system refuses another byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0")
    finally:
        os.close(fd)


def test_publisher_failure_is_kept_and_reported_unhealthy(
    small_disk: Path, mosquitto: Mosquitto
) -> None:
    outbox = Outbox(small_disk / "outbox.sqlite3", max_bytes=None)
    for _ in range(20):
        outbox.append("wellsense/v1/s1/p-1/hr", b"x" * 300, "dev-1", outbox.next_seq("dev-1"))
    fill(small_disk)
    failures: list[BaseException] = []
    settings = MqttSettings(
        "127.0.0.1",
        mosquitto.port,
        True,
        mosquitto.username,
        mosquitto.ca_file,
        None,
        None,
        30,
        mosquitto.password,
    )
    publisher = Publisher(settings, outbox, "s1", "gw-full", on_failure=failures.append)
    publisher.start()
    try:
        # The broker's PUBACKs must be recorded in the outbox: the disk refuses.
        wait_until(lambda: publisher.failure is not None, 30, "the publisher to fail")
        assert "disk is full" in str(publisher.failure)
        assert failures == [publisher.failure]
        assert not publisher.healthy()  # so the collector stops pinging the watchdog
        assert outbox.stats().depth == 20  # nothing lost: every row is still there
    finally:
        publisher.stop()
        outbox.close()


def _notifications(sock: socket.socket) -> list[str]:
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(4096).decode())
    return out


def test_collector_exits_non_zero_with_a_clear_error_when_the_disk_fills(
    small_disk: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = scratch_dir("diskfull-collector")
    # systemd's notify socket, played by the test: a 2 s watchdog means a ping a second.
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(workdir / "notify.sock"))
    notify.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(workdir / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    emulator = Emulator(workdir, participants=2).start()
    try:
        config = write_collector_config(
            workdir / "collector.toml",
            mosquitto,
            study=f"t{uuid.uuid4().hex[:8]}",
            participants=2,
            data_dir=small_disk / "gw",
        )
        log = workdir / "collector.log"
        collector = Collector(config, mosquitto, emulator, log).start()
        assert collector.proc is not None
        wait_until(
            lambda: (
                (small_disk / "gw" / "outbox.sqlite3").exists()
                and "collector health" in log.read_text(errors="replace")
            ),
            60,
            "the collector to run",
        )
        time.sleep(3)
        before = _notifications(notify)
        # Healthy publisher and loop: the watchdog is pinged.
        assert "READY=1" in before and before.count("WATCHDOG=1") >= 2, before
        fill(small_disk)
        code = collector.proc.wait(120)
        text = log.read_text(errors="replace")
        assert code != 0, text[-2000:]
        assert "disk is full" in text, text[-2000:]
        assert "STOPPING=1" in _notifications(notify)
    finally:
        emulator.stop()
        notify.close()


def test_a_stuck_publisher_is_reported_unhealthy_until_it_turns_again(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    settings = MqttSettings(
        "127.0.0.1",
        mosquitto.port,
        True,
        mosquitto.username,
        mosquitto.ca_file,
        None,
        None,
        30,
        mosquitto.password,
    )
    publisher = Publisher(settings, outbox, "s1", "gw-stuck")
    publisher.start()
    try:
        wait_until(lambda: publisher.connected, 15, "the publisher to connect")
        assert publisher.healthy(stalled_after_s=2)
        # Hold the outbox (as a hung SQLite call would): the pump blocks on it.
        with outbox._lock:
            publisher.wake()
            wait_until(lambda: not publisher.healthy(stalled_after_s=2), 10, "the stall")
            assert publisher.failure is None
        wait_until(lambda: publisher.healthy(stalled_after_s=2), 10, "the pump to turn again")
    finally:
        publisher.stop()
        outbox.close()
