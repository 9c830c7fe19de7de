"""End to end: a simulated participant takes the strap off; the study team is told, then not.

Real processes and services all the way: the emulated wearable (BlueZ on a
private D-Bus, time-compressed x120), ``wellsense collect`` (bleak's real
BlueZ backend), the suite's Mosquitto (TLS, password), the processing
service writing to the suite's InfluxDB 2.7, and ``wellsense rules run``
(the standalone runner) evaluating the default rule set in ``rules/`` on the
emulator's clock. The wear alert must appear on the alerts topic (and as the
participant's retained state) and in InfluxDB, and resolve when the strap is
back on.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector import wire
from tests.integration.harness import Collector, Emulator, write_collector_config
from tests.integration.processing_fixture import Pipeline, mqtt_client, pipeline, wait_until

__all__ = ["pipeline"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ADDRESS = "C0:FF:EE:00:00:01"
PARTICIPANT = "p-0001"
RULE = "adherence-low-wear"
TIME_SCALE = 120.0  # 1 real second = 2 simulated minutes


class AlertListener:
    """Subscribes to the study's alert topics (events and retained states), keeps everything."""

    def __init__(self, p: Pipeline) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any], bool]] = queue.Queue()
        self.seen: list[tuple[str, dict[str, Any], bool]] = []
        self.client = mqtt_client(p.broker)
        topic = f"{wire.alerts_topic(p.study)}/#"  # '#' also matches the parent level
        self.client.on_connect = lambda c, u, f, rc, props: c.subscribe(topic, qos=1)
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic, json.loads(m.payload), bool(m.retain))
        )
        self.client.connect("127.0.0.1", p.broker.port)
        self.client.loop_start()

    def drain(self) -> list[tuple[str, dict[str, Any], bool]]:
        while True:
            try:
                self.seen.append(self.messages.get_nowait())
            except queue.Empty:
                return self.seen

    def events(self, state: str) -> list[dict[str, Any]]:
        return [
            body
            for topic, body, _ in self.drain()
            if body.get("schema") == "wellsense.alert.v1"
            and body["rule"] == RULE
            and body["state"] == state
        ]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(params=["standalone-runner", "inside-processing"])
def stack(
    request: pytest.FixtureRequest, pipeline: Pipeline, tmp_path: Path
) -> Iterator[tuple[Pipeline, Emulator, Path]]:
    """The whole chain; the rules run either as `wellsense rules run` or inside processing."""
    emulator = Emulator(tmp_path, participants=1, time_scale=TIME_SCALE).start()
    collector: Collector | None = None
    runner: subprocess.Popen[bytes] | None = None
    try:
        emulator.ctl("worn", ADDRESS, "on")  # worn until the test says otherwise
        if request.param == "inside-processing":
            pipeline.spawn(
                extra_env=dict(emulator.env),  # the simulation clock
                features={"enabled": False},
                rules={"enabled": True, "directory": str(REPO / "rules"), "interval_s": 1},
            )
            log_path = pipeline.directory / "processing-w1.log"
        else:
            pipeline.start(features={"enabled": False})
        cfg = write_collector_config(
            tmp_path / "gateway.toml",
            pipeline.broker,
            study=pipeline.study,
            participants=1,
            data_dir=tmp_path / "gw-data",
        )
        collector = Collector(cfg, pipeline.broker, emulator, tmp_path / "collector.log").start()
        if request.param == "standalone-runner":
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")},
                **emulator.env,  # the simulation clock
                "PYTHONPATH": str(REPO),
            }
            log_path = tmp_path / "rules.log"
            with log_path.open("wb") as out:
                runner = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "processing.rules.cli",
                        "run",
                        "--config",
                        str(pipeline.write_config()),
                        "--rules",
                        str(REPO / "rules"),
                        "--interval",
                        "1s",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO,
                )
        yield pipeline, emulator, log_path
    finally:
        if runner is not None and runner.poll() is None:
            runner.send_signal(signal.SIGTERM)
            try:
                runner.wait(20)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()
        if collector is not None:
            collector.stop()
        emulator.stop()


def flux(p: Pipeline, body: str) -> list[dict[str, Any]]:
    # Data carries the emulator's clock, which runs ahead of the server's: an explicit stop.
    query = (
        f'from(bucket: "{p.bucket}")'
        f" |> range(start: 2000-01-01T00:00:00Z, stop: 2100-01-01T00:00:00Z) {body}"
    )
    with p.client() as client:
        tables = client.query_api().query(query)
    return [record.values for table in tables for record in table.records]


def hr_points(p: Pipeline) -> int:
    rows = flux(
        p,
        '|> filter(fn: (r) => r._measurement == "hr" and r._field == "hr_bpm")'
        " |> group() |> count()",
    )
    return int(rows[0]["_value"]) if rows else 0


def alert_points(p: Pipeline) -> list[dict[str, Any]]:
    return flux(
        p,
        '|> filter(fn: (r) => r._measurement == "alert" and r._field == "state")'
        ' |> group() |> sort(columns: ["_time"])',
    )


def runner_subjects(log_path: Path) -> int:
    subjects = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if '"rules evaluated"' in line:
            subjects = int(json.loads(line)["subjects"])
    return subjects


def _diagnose(log_path: Path, listener: AlertListener) -> str:
    lines = log_path.read_text(errors="replace").splitlines()
    noisy = '"events": 0'
    tail = [line for line in lines if noisy not in line][-15:]
    return "runner log:\n" + "\n".join(tail) + f"\nalert messages: {listener.drain()[-6:]}"


def test_strap_off_raises_the_wear_alert_and_strap_on_resolves_it(
    stack: tuple[Pipeline, Emulator, Path],
) -> None:
    p, emulator, log_path = stack
    listener = AlertListener(p)
    started = time.monotonic()
    try:
        # worn data flows through collector -> broker -> processing -> InfluxDB -> runner
        wait_until(lambda: hr_points(p) > 20, 40, "heart-rate data in InfluxDB")
        wait_until(
            lambda: runner_subjects(log_path) >= 2,
            30,
            "the runner to see the participant and the gateway",
        )
        time.sleep(3)  # a few evaluations while worn: nothing fires
        assert listener.events("firing") == [], _diagnose(log_path, listener)

        emulator.ctl("worn", ADDRESS, "off")
        # the rule: under 10 h worn in 24 h and not worn for > 60 simulated minutes (30 s)
        try:
            wait_until(lambda: listener.events("firing"), 75, "the wear alert on the alerts topic")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnose(log_path, listener)}") from None
        fired = listener.events("firing")
        assert len(fired) == 1, _diagnose(log_path, listener)
        event = fired[0]
        assert event["participant"] == PARTICIPANT
        assert event["severity"] == "info" and event["notify"] == ["study-team"]
        assert "screening signal" in event["description"]
        assert 0 <= event["value"] < 10  # wear_hours_24h
        state_topic = f"{wire.alerts_topic(p.study)}/{PARTICIPANT}/state"
        states = [b for t, b, _ in listener.drain() if t == state_topic]
        assert RULE in states[-1]["alerts"]
        wait_until(
            lambda: [r["_value"] for r in alert_points(p)] == ["firing"],
            15,
            "the firing alert in InfluxDB",
        )
        point = alert_points(p)[0]
        assert (point["participant"], point["rule"], point["severity"]) == (
            PARTICIPANT,
            RULE,
            "info",
        )

        emulator.ctl("worn", ADDRESS, "on")
        try:
            wait_until(
                lambda: listener.events("resolved"), 40, "the resolution on the alerts topic"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnose(log_path, listener)}") from None
        resolved = listener.events("resolved")[0]
        assert resolved["since_ns"] == event["ts_ns"]
        assert len(listener.events("firing")) == 1  # de-duplicated while it lasted
        wait_until(
            lambda: [r["_value"] for r in alert_points(p)] == ["firing", "resolved"],
            15,
            "the resolution in InfluxDB",
        )
        states = [b for t, b, _ in listener.drain() if t == state_topic]
        assert states[-1]["alerts"] == {}
    finally:
        listener.close()

    # the retained state is what a dashboard connecting now gets: nothing open
    late = AlertListener(p)
    try:
        wait_until(lambda: late.drain(), 10, "the retained alert state")
        retained = [(t, b) for t, b, r in late.drain() if r]
        assert retained and all(b["alerts"] == {} for _, b in retained)
    finally:
        late.close()
    assert time.monotonic() - started < 110
    log_text = log_path.read_text(errors="replace")
    assert "Traceback" not in log_text
