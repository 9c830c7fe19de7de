"""Fault matrix: samples sent, stored, missing and duplicated under each fault.

    python bench/faults.py --quick            # every fault, short outages (~15 min)
    python bench/faults.py                    # full lengths (5-min InfluxDB outage, 2-min gaps)
    python bench/faults.py --only collector_sigkill --only processing_sigkill

Real processes only: the BLE emulator (``wellsense_sim``, its own D-Bus),
the collector (``wellsense collect``), Mosquitto (TLS, persistence, a fresh
broker per fault), the processing service (``wellsense process``) and
InfluxDB (``$WELLSENSE_INFLUXD``, one server, a bucket per fault). The
processing service writes to InfluxDB directly; the write guard is not in
this path (bench/pipeline.py measures the guarded path).

Per fault: the emulated straps stream for a while, the fault is applied,
streaming goes on, then the straps go out of range and the pipeline drains
(the collector still running, re-sending what is unconfirmed) until InfluxDB
holds every sample or nothing changes for 100 s; then the collector stops.

* ``sent``: HR notifications the emulator sent (its own counters: a strap
  notifies only while connected, so this is what the gateway received),
  read once the straps are silenced (out of range) for the drain;
* ``stored``: ``hr`` points (field ``hr_bpm``) in the fault's bucket, over
  InfluxDB's whole time range, per participant;
* ``missing`` / ``duplicated``: per participant, sent - stored when positive /
  stored - sent when positive, summed (InfluxDB keeps one point per series
  and timestamp, so a sample stored twice at the same time is one point; a
  sample stored at two times, for example across a clock step, counts as a
  duplicate);
* ``dead_lettered``, ``duplicates_discarded``: from processing's last stats line.

The comparison peer is the issue's target: 0 missing and 0 duplicated, or a
documented bound where physics allows no less.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from influxdb_client import InfluxDBClient  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from tests.integration.harness import Emulator, write_collector_config  # noqa: E402
from tests.integration.processing_fixture import _toml_table  # noqa: E402
from wellsense_cli import localservices as ls  # noqa: E402

ALL_TIME = "start: 1677-09-21T00:12:43.145224194Z, stop: 2262-04-11T23:47:16.854775806Z"
HOUR_NS = 3600 * 10**9


@dataclass
class Timing:
    """Durations (s) of one run; ``--quick`` shortens the outages (documented in the output)."""

    warmup_s: float
    after_s: float
    influx_outage_s: float
    no_subscriber_s: float
    queue_limit_gap_s: float
    disk_full_s: float
    drain_timeout_s: float

    @classmethod
    def of(cls, quick: bool) -> Timing:
        if quick:
            return cls(8, 8, 30, 20, 20, 15, 240)
        return cls(20, 20, 300, 120, 120, 60, 900)


@dataclass
class Stack:
    """One fault's processes: a fresh broker and bucket, the emulator, collector, processing."""

    root: Path
    influx: ls.Influxd
    timing: Timing
    participants: int = 2
    batch_interval_s: float = 10.0  # as in the sample config: kills hit open batches
    max_queued_messages: int | None = None
    session_expiry_s: int = 600
    emulator_config: str | None = None
    data_dir: Path | None = None
    study: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:8]}")
    broker: ls.Mosquitto | None = None
    emulator: Emulator | None = None
    collector: subprocess.Popen[bytes] | None = None
    processing: subprocess.Popen[bytes] | None = None
    collector_env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def bucket(self) -> str:
        return f"faults-{self.study}"

    @property
    def gateway_dir(self) -> Path:
        return self.data_dir or self.root / "gw"

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Stack:
        self.root.mkdir(parents=True, exist_ok=True)
        self.broker = ls.Mosquitto(self.root / "mosquitto")
        self.broker._write_config = self._broker_config(self.broker._write_config)  # type: ignore[method-assign]
        self.broker.start()
        with self._client() as client:
            org = client.organizations_api().find_organizations(org=self.influx.org)[0]
            client.buckets_api().create_bucket(bucket_name=self.bucket, org_id=org.id)
        extra: tuple[str, ...] = ()
        participants = self.participants
        if self.emulator_config:
            cfg = self.root / "emulator.toml"
            cfg.write_text(self.emulator_config)
            extra, participants = ("--config", str(cfg)), 0
        self.emulator = Emulator(self.root, participants=participants, extra_args=extra).start()
        self.start_processing()
        self.start_collector()
        return self

    def _broker_config(self, write: Callable[[], Path]) -> Callable[[], Path]:
        def patched() -> Path:
            conf = write()
            if self.max_queued_messages is not None:
                text = conf.read_text().replace(
                    "max_queued_messages 100000",
                    f"max_queued_messages {self.max_queued_messages}",
                )
                conf.write_text(text)
            return conf

        return patched

    def close(self) -> None:
        for proc in (self.collector, self.processing):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if self.emulator is not None:
            self.emulator.stop()
        if self.broker is not None:
            self.broker.stop()
        with contextlib.suppress(Exception), self._client() as client:
            bucket = client.buckets_api().find_bucket_by_name(self.bucket)
            if bucket is not None:
                client.buckets_api().delete_bucket(bucket)

    def _client(self) -> InfluxDBClient:
        return InfluxDBClient(url=self.influx.url, token=self.influx.token, org=self.influx.org)

    # -- the collector ---------------------------------------------------------------

    def start_collector(self, extra_env: dict[str, str] | None = None) -> None:
        assert self.broker is not None and self.emulator is not None
        config = write_collector_config(
            self.root / "collector.toml",
            self.broker,
            study=self.study,
            participants=self.participants,
            data_dir=self.gateway_dir,
            batch_interval_s=self.batch_interval_s,
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")},
            **self.emulator.env,
            **(extra_env or {}),
            "WELLSENSE_MQTT_PASSWORD": self.broker.password,
            "PYTHONPATH": str(REPO),
        }
        with (self.root / "collector.log").open("ab") as log:
            self.collector = subprocess.Popen(
                [sys.executable, "-m", "wellsense_cli.main", "collect", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )

    def stop_collector(self, sig: int = signal.SIGTERM) -> int | None:
        proc = self.collector
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(sig)
        try:
            return proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(10)

    # -- processing -------------------------------------------------------------------

    @property
    def processing_client_id(self) -> str:
        return f"wellsense-proc-{self.study}-w1"

    def start_processing(self) -> None:
        assert self.broker is not None
        secrets = self.root / "secrets"
        secrets.mkdir(exist_ok=True)
        password, token = secrets / "mqtt-password", secrets / "influx-token"
        for path, value in ((password, self.broker.password), (token, self.influx.token)):
            path.write_text(value)
            path.chmod(0o600)
        sections: dict[str, dict[str, Any]] = {
            "service": {
                "study": self.study,
                "stats_interval_s": 2,
                "erased_file": str(self.root / "erased.txt"),
            },
            "mqtt": {
                "url": self.broker.url,
                "username": self.broker.username,
                "password_file": str(password),
                "ca_file": str(self.broker.ca_file),
                "session_expiry_s": self.session_expiry_s,
            },
            "influx": {
                "url": self.influx.url,
                "org": self.influx.org,
                "bucket": self.bucket,
                "token_file": str(token),
                "retry_max_s": 2,
            },
            "features": {"enabled": False},
        }
        cfg = self.root / "processing.toml"
        cfg.write_text("\n".join(_toml_table(k, v) for k, v in sections.items()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")}
        env["PYTHONPATH"] = str(REPO)
        with (self.root / "processing.log").open("ab") as log:
            self.processing = subprocess.Popen(
                [sys.executable, "-m", "wellsense_cli.main", "process", "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )

    def stop_processing(self, sig: int = signal.SIGTERM) -> None:
        proc = self.processing
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def wipe_processing_session(self) -> None:
        """Connect as processing with clean start and no expiry: the broker forgets its session."""
        assert self.broker is not None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.processing_client_id,
            protocol=mqtt.MQTTv5,
        )
        client.tls_set(ca_certs=str(self.broker.ca_file))
        client.username_pw_set(self.broker.username, self.broker.password)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        client.connect("127.0.0.1", self.broker.port, clean_start=True, properties=props)
        client.loop_start()
        time.sleep(1)
        client.disconnect()
        client.loop_stop()

    # -- the broker ----------------------------------------------------------------------

    def kill_broker(self) -> None:
        assert self.broker is not None and self.broker.pid is not None
        os.kill(self.broker.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.broker.pid, 0)
        self.broker.pid = None

    # -- counting -----------------------------------------------------------------------

    def sent(self) -> dict[str, int]:
        assert self.emulator is not None
        out: dict[str, int] = {}
        for i, s in enumerate(sorted(self.emulator.stats(), key=lambda s: str(s["address"]))):
            out[f"p-{i + 1:04d}"] = int(s["hr_notifications"])  # type: ignore[call-overload]
        return out

    def stored(self) -> dict[str, int]:
        flux = (
            f'from(bucket: "{self.bucket}") |> range({ALL_TIME})'
            ' |> filter(fn: (r) => r._measurement == "hr" and r._field == "hr_bpm")'
            ' |> group(columns: ["participant"]) |> count()'
        )
        with self._client() as client:
            tables = client.query_api().query(flux)
        return {
            str(rec.values["participant"]): int(rec.get_value())
            for t in tables
            for rec in t.records
        }

    def processing_stats(self) -> dict[str, Any]:
        last: dict[str, Any] = {}
        path = self.root / "processing.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if '"duplicates"' in line:
                with contextlib.suppress(ValueError):
                    last = json.loads(line)
        return last.get("fields", last)

    def drain(self) -> tuple[dict[str, int], dict[str, int]]:
        """Silence the straps, let the gateway deliver what it holds, count.

        The straps go out of range (no more notifications) while the collector
        keeps running: it closes its open batches and re-sends whatever
        processing has not confirmed (after 30 s, then 60 s, ...), as it would
        in the field. Waits until InfluxDB holds every sample sent, or nothing
        changed for longer than two re-send rounds, or the drain timeout.
        """
        assert self.emulator is not None
        for s in self.emulator.stats():
            self.emulator.ctl("out-of-range", str(s["address"]), "86400")
        time.sleep(2)
        sent = self.sent()
        deadline = time.monotonic() + self.timing.drain_timeout_s
        last, stable_since = None, time.monotonic()
        while time.monotonic() < deadline:
            stored = self.stored()
            if all(stored.get(p, 0) >= n for p, n in sent.items()):
                time.sleep(3)  # let late duplicates show
                break
            if stored != last:
                last, stable_since = stored, time.monotonic()
            elif time.monotonic() - stable_since > 100:
                break
            time.sleep(2)
        self.stop_collector()
        return sent, self.stored()


def measure(stack: Stack, fault: str, apply: Callable[[Stack], None]) -> dict[str, Any]:
    started = time.monotonic()
    stack.start()
    try:
        _wait_streaming(stack)
        time.sleep(stack.timing.warmup_s)
        apply(stack)
        time.sleep(stack.timing.after_s)
        sent, stored = stack.drain()
    finally:
        stats = stack.processing_stats()
        stack.close()
    people = sorted(set(sent) | set(stored))
    return {
        "fault": fault,
        "sent": sum(sent.values()),
        "stored": sum(stored.values()),
        "missing": sum(max(0, sent.get(p, 0) - stored.get(p, 0)) for p in people),
        "duplicated": sum(max(0, stored.get(p, 0) - sent.get(p, 0)) for p in people),
        "dead_lettered": stats.get("dead_lettered"),
        "duplicates_discarded": stats.get("duplicates"),
        "seconds": round(time.monotonic() - started, 1),
        "notes": stack.notes,
    }


def _wait_streaming(stack: Stack, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(stack.stored().values()) > 0:
            return
        time.sleep(1)
    raise RuntimeError(f"nothing stored within {timeout_s} s; see {stack.root}")


# --------------------------------------------------------------------------- the faults


def broker_kill9_during_influx_outage(s: Stack) -> None:
    outage = s.timing.influx_outage_s
    s.influx.stop()
    time.sleep(outage / 2)
    s.kill_broker()
    time.sleep(2)
    assert s.broker is not None
    s.broker.start()  # what systemd does; persistence reloads its last snapshot
    time.sleep(outage / 2)
    s.influx.start()
    s.notes.append(f"InfluxDB down {outage:.0f} s, broker SIGKILLed half way")


def broker_queue_limit(s: Stack) -> None:
    s.stop_processing()
    time.sleep(s.timing.queue_limit_gap_s)
    s.start_processing()
    s.notes.append(
        f"max_queued_messages {s.max_queued_messages}, "
        f"processing away {s.timing.queue_limit_gap_s:.0f} s"
    )


def no_subscriber(s: Stack) -> None:
    s.stop_processing()
    s.wipe_processing_session()
    time.sleep(s.timing.no_subscriber_s)
    s.start_processing()
    s.notes.append(f"no session and no subscriber for {s.timing.no_subscriber_s:.0f} s")


def processing_session_expired(s: Stack) -> None:
    s.stop_processing()
    time.sleep(s.session_expiry_s + 10)
    s.start_processing()
    s.notes.append(f"processing away {s.session_expiry_s + 10} s, session expiry 60 s")


def outbox_replaced(s: Stack) -> None:
    s.stop_collector()
    aside = s.gateway_dir / "aside"
    aside.mkdir(exist_ok=True)
    for f in s.gateway_dir.glob("outbox.sqlite3*"):
        f.rename(aside / f.name)
    s.start_collector()
    s.notes.append("outbox moved aside with the collector stopped; a new one starts at seq 0")


def collector_sigkill(s: Stack) -> None:
    for k in range(3):
        time.sleep(4 + k)
        s.stop_collector(signal.SIGKILL)
        s.start_collector()
        time.sleep(6)
    s.notes.append("3 x SIGKILL mid-batch (10 s batches), restarted at once")


def processing_sigkill(s: Stack) -> None:
    for _ in range(2):
        s.stop_processing(signal.SIGKILL)
        time.sleep(3)
        s.start_processing()
        time.sleep(6)
    s.notes.append("2 x SIGKILL, restarted after 3 s")


def _clock_step(step_ns: int) -> Callable[[Stack], None]:
    def apply(s: Stack) -> None:
        s.stop_collector()
        now = time.time_ns()
        s.start_collector(
            {
                "WELLSENSE_SIM_EPOCH_NS": str(now + step_ns),
                "WELLSENSE_SIM_ANCHOR_NS": str(now),
                "WELLSENSE_SIM_TIME_SCALE": "1",
            }
        )
        s.notes.append(
            f"collector restarted with its clock {step_ns / HOUR_NS:+.0f} h (simulation clock)"
        )

    return apply


def disk_full(s: Stack) -> None:
    filler = s.gateway_dir / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    time.sleep(s.timing.disk_full_s)
    filler.unlink()
    restarted = 0
    if s.collector is not None and s.collector.poll() is not None:
        s.start_collector()  # Restart=always in the unit
        restarted = 1
    s.notes.append(
        f"gateway data dir on a 16 MiB tmpfs, full for {s.timing.disk_full_s:.0f} s; "
        f"collector restarted {restarted}x"
    )


def glitch_every_100(s: Stack) -> None:
    # Stream until every strap has sent at least 3 glitches.
    deadline = time.monotonic() + 600
    while min(s.sent().values()) < 310 and time.monotonic() < deadline:
        time.sleep(5)
    s.notes.append("every 100th HR notification carries 65535 bpm")


def _emulator_glitch_config(participants: int) -> str:
    return "".join(
        f'[[wearable]]\naddress = "C0:FF:EE:00:00:{i:02X}"\nseed = {i}\nglitch_every = 100\n'
        for i in range(1, participants + 1)
    )


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


FAULTS: dict[str, Callable[[Stack], None]] = {
    "broker_kill9_during_influx_outage": broker_kill9_during_influx_outage,
    "broker_queue_limit": broker_queue_limit,
    "no_subscriber": no_subscriber,
    "processing_session_expired": processing_session_expired,
    "outbox_replaced": outbox_replaced,
    "collector_sigkill": collector_sigkill,
    "processing_sigkill": processing_sigkill,
    "clock_step_plus_1h": _clock_step(HOUR_NS),
    "clock_step_minus_1h": _clock_step(-HOUR_NS),
    "disk_full": disk_full,
    "glitch_every_100": glitch_every_100,
}


def run_fault(name: str, root: Path, influx: ls.Influxd, timing: Timing) -> dict[str, Any]:
    """Build the fault's stack, apply the fault, and count."""
    stack = Stack(root / name, influx, timing)
    if name in ("broker_queue_limit", "no_subscriber"):
        stack.batch_interval_s = 1.0  # many small messages: the queue overflows quickly
    if name == "broker_queue_limit":
        stack.max_queued_messages = 5
    if name == "processing_session_expired":
        stack.session_expiry_s = 60  # the shortest processing accepts
    if name == "glitch_every_100":
        stack.emulator_config = _emulator_glitch_config(stack.participants)
    if name == "disk_full":
        with _tmpfs(root / name / "gw-tmpfs", "16m") as data_dir:
            stack.data_dir = data_dir
            return measure(stack, name, FAULTS[name])
    return measure(stack, name, FAULTS[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short outages (minutes in total)")
    parser.add_argument("--only", action="append", choices=sorted(FAULTS), help="repeatable")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    timing = Timing.of(args.quick)
    root = Path(tempfile.mkdtemp(prefix="wellsense-faults-", dir="/tmp"))
    os.chmod(root, 0o755)  # mosquitto drops to its own user and must reach its files
    influx = ls.Influxd(root / "influxd").start()
    results = []
    try:
        for name in args.only or list(FAULTS):
            try:
                results.append(run_fault(name, root, influx, timing))
            except Exception as exc:  # report and go on: one broken fault must not hide the rest
                results.append({"fault": name, "error": f"{type(exc).__name__}: {exc}"})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        influx.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"quick": args.quick, "timing": vars(timing), "faults": results}, indent=1))
    return 0 if all(r.get("missing") == 0 and r.get("duplicated") == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
