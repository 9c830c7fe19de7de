"""Disconnect reasons become clear log messages (a clean broker stop is not an "error")."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from collector.mqtt import describe_disconnect


def _rc(name: str) -> ReasonCode:
    return ReasonCode(PacketTypes.DISCONNECT, name)


def test_reasons_from_the_broker_are_named() -> None:
    server = DisconnectFlags(is_disconnect_packet_from_server=True)
    assert "shutting down" in describe_disconnect(server, _rc("Server shutting down"))
    assert "session taken over" in describe_disconnect(server, _rc("Session taken over"))


def test_a_closed_socket_is_a_lost_connection_not_an_unspecified_error() -> None:
    local = DisconnectFlags(is_disconnect_packet_from_server=False)
    text = describe_disconnect(local, _rc("Unspecified error"))
    assert "connection lost" in text and "Unspecified" not in text
    assert "keep-alive" in describe_disconnect(local, _rc("Keep alive timeout"))
    assert describe_disconnect(local, _rc("Success")) == "disconnected on request"


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed")
def test_what_paho_reports_when_mosquitto_stops(tmp_path: Path) -> None:
    """The mapping rests on this: Mosquitto stops without a DISCONNECT packet."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    seen: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_disconnect = lambda c, u, flags, rc, p: seen.append(describe_disconnect(flags, rc))
    try:
        for _ in range(50):
            try:
                client.connect("127.0.0.1", port)
                break
            except OSError:
                time.sleep(0.1)
        client.loop_start()
        time.sleep(0.3)
        os.kill(broker.pid, signal.SIGTERM)
        broker.wait(10)
        for _ in range(50):
            if seen:
                break
            time.sleep(0.1)
    finally:
        client.loop_stop()
        if broker.poll() is None:
            broker.kill()
            broker.wait()
    assert seen and seen[0].startswith("connection lost")
