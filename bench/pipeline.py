"""End-to-end ingest: synthetic gateways -> Mosquitto -> ``wellsense process`` -> InfluxDB.

For 100, 1,000 and 10,000 simulated participants, a publisher process sends
wire-v1 HR messages (10 samples each, 1-2 RR intervals per sample) at a fixed
offered rate through the real TLS broker to the real processing service (a
subprocess, as deployed) and the real InfluxDB 2.x, all started here with
``wellsense_cli.localservices``. Reported, as JSON on stdout:

* ``samples_per_s``: HR samples stored per second of wall time, from the first
  publish until the last sample was queryable (so a backlog counts against it);
* ``latency_ms``: message-to-queryable latency, p50/p99: from the moment the
  gateway closes a message (``sent_ns``, the time of its newest
  notification) until a Flux query returns it, measured by polling probe
  participants every 50 ms (so +-50 ms resolution). The gateway's own batching
  interval comes on top and is a collector setting (``[batch] max_interval_s``);
* ``service_lag_ms``: the service's own view (newest sample time -> write done),
  from its ``stats`` log lines, covering every message.

Two paths per participant count (``--paths``): ``direct`` (processing holds
an InfluxDB token and writes to InfluxDB) and ``guard``, the production path:
processing writes and queries through ``wellsense influx-guard`` (a separate
process, as deployed: authentication, Content-Length checks, re-encoded
bodies, the Flux rule) with only the guard's client token; both over the TLS
broker.

Peer in the same run: ``influxdb-client``'s batching ``WriteApi`` writing the
same points straight to InfluxDB (no MQTT, no validation, no acks), as a
user without WellSense would. Feature computation is switched off here: it
is measured by the tests, not by this ingest benchmark.

Run: ``.venv/bin/python bench/pipeline.py [--seconds 20] [--rate 25000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from processing.metrics import percentile  # noqa: E402
from wellsense_cli import localservices as ls  # noqa: E402

SAMPLES_PER_MESSAGE = 10
PROBES = 10


# --------------------------------------------------------------------------- load


def paced(rate: float, seconds: float) -> Iterator[int]:
    """0, 1, 2, ... at ``rate`` items per second for ``seconds``: the same offered
    load for WellSense and its peer."""
    start = time.monotonic()
    n = 0
    while (target := start + n / rate) - start < seconds:
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield n
        n += 1


def _payload(study: str, p: int, seq: int, now_ns: int, spacing_ns: int) -> tuple[str, bytes]:
    """One valid wire-v1 HR message whose newest sample is ``now_ns``."""
    samples = []
    for i in range(SAMPLES_PER_MESSAGE):
        ts = now_ns - (SAMPLES_PER_MESSAGE - 1 - i) * spacing_ns
        rr = "[812.5,790.25]" if (seq + i) % 3 == 0 else "[801.0]"
        samples.append(
            f'{{"ts_ns":{ts},"hr_bpm":{70 + (seq + i) % 20},"contact":true,'
            f'"energy_kj":null,"rr_ms":{rr}}}'
        )
    body = (
        f'{{"schema":"wellsense.v1","stream":"hr","study":"{study}","participant":"p-{p}",'
        f'"device":"d-{p}","gateway":"gw-{p // 50}","seq":{seq},"sent_ns":{now_ns},'
        f'"clock":{{"synced":true,"source":"sim","max_error_ms":5.0}},'
        f'"samples":[{",".join(samples)}]}}'
    )
    return f"wellsense/v1/{study}/p-{p}/hr", body.encode()


def publisher_main(
    env: dict[str, str], study: str, participants: int, rate: float, seconds: float, out: Any
) -> None:
    """Runs in its own process: publish at ``rate`` samples/s, report sent_ns of probes."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=env["WELLSENSE_MQTT_CA"], tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.username_pw_set(env["WELLSENSE_MQTT_USERNAME"], env["WELLSENSE_MQTT_PASSWORD"])
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    port = int(env["WELLSENSE_MQTT_URL"].rsplit(":", 1)[1])
    client.connect("127.0.0.1", port)
    client.loop_start()
    msg_rate = rate / SAMPLES_PER_MESSAGE
    per_participant_s = participants / msg_rate  # each participant's batch interval
    spacing_ns = int(per_participant_s / SAMPLES_PER_MESSAGE * 1e9)
    probes: list[tuple[int, int, int]] = []
    seqs = [0] * participants
    infos = []
    for n in paced(msg_rate, seconds):
        p = n % participants
        now_ns = time.time_ns()
        topic, payload = _payload(study, p, seqs[p], now_ns, spacing_ns)
        infos.append(client.publish(topic, payload, qos=1))
        if p < PROBES:
            probes.append((p, seqs[p], now_ns))
        seqs[p] += 1
    n = len(infos)
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()
    out.send({"messages": n, "samples": n * SAMPLES_PER_MESSAGE, "probes": probes})
    out.close()


# --------------------------------------------------------------------------- measuring


class ProbePoller(threading.Thread):
    """Records when each probe participant's latest seq first becomes queryable."""

    def __init__(self, client: Any, bucket: str, study: str) -> None:
        super().__init__(daemon=True)
        self.query_api = client.query_api()
        self.bucket, self.study = bucket, study
        self.seen: dict[int, list[tuple[int, int]]] = {p: [] for p in range(PROBES)}
        self.stop = threading.Event()

    def run(self) -> None:
        devices = " or ".join(f'r.device == "d-{p}"' for p in range(PROBES))
        flux = (
            f'from(bucket: "{self.bucket}") |> range(start: -10m)'
            f' |> filter(fn: (r) => r._measurement == "hr" and r._field == "seq"'
            f' and r.study == "{self.study}" and ({devices})) |> max()'
        )
        while not self.stop.wait(0.05):
            with contextlib.suppress(Exception):
                now_ns = time.time_ns()
                for table in self.query_api.query(flux):
                    for record in table.records:
                        p = int(record.values["device"][2:])
                        seq = int(record.get_value())
                        if not self.seen[p] or self.seen[p][-1][0] < seq:
                            self.seen[p].append((seq, now_ns))

    def latencies_ms(self, probes: list[tuple[int, int, int]]) -> list[float]:
        out = []
        for p, seq, sent_ns in probes:
            for max_seq, at_ns in self.seen[p]:
                if max_seq >= seq:
                    out.append((at_ns - sent_ns) / 1e6)
                    break
        return out


def count_samples(client: Any, bucket: str, study: str) -> int:
    flux = (
        f'from(bucket: "{bucket}") |> range(start: -1h) |> filter(fn: (r) => '
        f'r._measurement == "hr" and r._field == "hr_bpm" and r.study == "{study}")'
        " |> group() |> count()"
    )
    tables = client.query_api().query(flux)
    return sum(int(r.get_value()) for t in tables for r in t.records)


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1) if values else float("nan"),
        "n": len(values),
    }


# --------------------------------------------------------------------------- runs


def _cpu_s(pids: dict[str, int]) -> dict[str, float]:
    import psutil

    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system + t.children_user + t.children_system
    return out


def run_pipeline(
    services: ls.LocalServices,
    work: Path,
    participants: int,
    rate: float,
    seconds: float,
    workers: int = 1,
    via_guard: bool = False,
) -> dict[str, Any]:
    from influxdb_client import InfluxDBClient

    path = "guard" if via_guard else "direct"
    study = f"bench{participants}w{workers}{path[0]}"
    bucket = f"bench-{participants}-{workers}-{path}-{os.getpid()}"
    env = services.env()
    client = InfluxDBClient(
        url=env["WELLSENSE_INFLUX_URL"],
        token=env["WELLSENSE_INFLUX_TOKEN"],
        org=env["WELLSENSE_INFLUX_ORG"],
        timeout=60_000,
    )
    client.buckets_api().create_bucket(bucket_name=bucket, org=env["WELLSENSE_INFLUX_ORG"])
    procs, logs = [], []
    guard = start_guard(env, bucket, work) if via_guard else None
    # What processing sees: the guard's URL and client token, or InfluxDB's.
    service_env = {**env, **guard[1]} if guard is not None else env
    shared = 'shared_group = "bench"\n' if workers > 1 else ""
    for w in range(workers):
        config = work / f"processing-{study}-{w}.toml"
        config.write_text(
            f'[service]\nstudy = "{study}"\nworker = "bench{w}"\nstats_interval_s = 2\n{shared}'
            "batch_max_points = 5000\nbatch_max_wait_ms = 100\nmax_inflight = 1000\n"
            f'[influx]\nbucket = "{bucket}"\n[features]\nenabled = false\n'
        )
        log_path = work / f"processing-{study}-{w}.log"
        logs.append(log_path)
        with log_path.open("wb") as log_file:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "wellsense_cli.main",
                        "process",
                        "--config",
                        str(config),
                    ],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                    env={**os.environ, **service_env, "PYTHONPATH": str(REPO)},
                )
            )
    pids = {f"processing_{w}": proc.pid for w, proc in enumerate(procs)}
    if guard is not None:
        pids["guard"] = guard[0].pid
    pids.update(influxd=services.influxd.pid or 0, mosquitto=services.mosquitto.pid or 0)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            "connected to broker" in log.read_text() for log in logs
        ):
            time.sleep(0.1)
        time.sleep(0.5)
        poller = ProbePoller(client, bucket, study)
        poller.start()
        receive, send = mp.Pipe(duplex=False)
        cpu_before = _cpu_s(pids)
        started = time.monotonic()
        pub = mp.Process(
            target=publisher_main, args=(env, study, participants, rate, seconds, send)
        )
        pub.start()
        sent = receive.recv()
        pub.join()
        published = time.monotonic()
        expected = sent["samples"]
        stored = 0
        drain_deadline = time.monotonic() + 300
        while time.monotonic() < drain_deadline:
            stored = count_samples(client, bucket, study)
            if stored >= expected:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        drain_s = time.monotonic() - published
        cpu_after = _cpu_s(pids)
        time.sleep(0.3)
        poller.stop.set()
        poller.join()
        latencies = poller.latencies_ms(sent["probes"])
    finally:
        if guard is not None:
            procs.append(guard[0])
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        client.close()
    stats = [
        json.loads(x) for log in logs for x in log.read_text().splitlines() if '"msg": "stats"' in x
    ]

    def finite(key: str) -> list[float]:
        return [s[key] for s in stats if isinstance(s.get(key), float) and s[key] == s[key]]

    lag50, lag99 = finite("lag_p50_ms"), finite("lag_p99_ms")
    finals = [s for s in stats if s.get("final")]
    cpu = {k: round(cpu_after.get(k, 0) - cpu_before.get(k, 0), 2) for k in cpu_before}
    service_cpu = sum(v for k, v in cpu.items() if k.startswith("processing"))
    return {
        "path": "TLS broker + write guard" if via_guard else "TLS broker, direct to InfluxDB",
        "participants": participants,
        "workers": workers,
        "offered_samples_per_s": rate,
        "samples_sent": expected,
        "samples_stored": stored,
        "samples_per_s": round(stored / elapsed),
        # Kept up: the backlog after the last publish drained within the p99 target.
        "kept_up": stored >= expected and drain_s <= 2.0,
        "drain_after_last_publish_s": round(drain_s, 2),
        "messages_per_s": round(sent["messages"] / elapsed),
        "points_written": sum(int(s.get("points_written", 0)) for s in finals),
        "dead_lettered": sum(int(s.get("dead_lettered", 0)) for s in finals),
        "latency_ms": _summary(latencies),
        "service_lag_ms": {
            "p50_median_interval": round(sorted(lag50)[len(lag50) // 2], 1) if lag50 else None,
            "p99_worst_interval": round(max(lag99), 1) if lag99 else None,
        },
        "cpu_s": cpu,
        "processing_cpu_us_per_sample": round(service_cpu / max(stored, 1) * 1e6, 1),
        "gateway_batch_interval_s": round(participants / (rate / SAMPLES_PER_MESSAGE), 2),
    }


def start_guard(
    env: dict[str, str], bucket: str, work: Path
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """``wellsense influx-guard`` for ``bucket`` as a process; (process, processing's env)."""
    port = ls.free_port()
    client_token = secrets.token_urlsafe(32)
    files = {}
    for name, value in (("influx", env["WELLSENSE_INFLUX_TOKEN"]), ("client", client_token)):
        files[name] = work / f"guard-{bucket}-{name}-token"
        files[name].write_text(value + "\n")
        files[name].chmod(0o600)
    log = (work / f"guard-{bucket}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "wellsense_cli.main", "influx", "guard",
            "--listen", f"127.0.0.1:{port}", "--influx-url", env["WELLSENSE_INFLUX_URL"],
            "--org", env["WELLSENSE_INFLUX_ORG"], "--bucket", bucket,
            "--influx-token-file", str(files["influx"]),
            "--client-token-file", str(files["client"]),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    return proc, {"WELLSENSE_INFLUX_URL": url, "WELLSENSE_INFLUX_TOKEN": client_token}


def run_peer(services: ls.LocalServices, rate: float, seconds: float) -> dict[str, Any]:
    """influxdb-client's batching WriteApi, same points, same offered rate, no MQTT."""
    from influxdb_client import InfluxDBClient, WriteOptions

    env = services.env()
    bucket = f"bench-peer-{os.getpid()}"
    latencies: list[float] = []
    lock = threading.Lock()
    written = [0]

    def on_success(conf: Any, data: Any) -> None:
        now = time.time_ns()
        text = data.decode() if isinstance(data, bytes) else str(data)
        with lock:
            for line in text.splitlines():
                if line.startswith("hr,"):
                    written[0] += 1
                    if written[0] % 10 == 0:
                        latencies.append((now - int(line.rsplit(" ", 1)[1])) / 1e6)

    client = InfluxDBClient(
        url=env["WELLSENSE_INFLUX_URL"],
        token=env["WELLSENSE_INFLUX_TOKEN"],
        org=env["WELLSENSE_INFLUX_ORG"],
        timeout=60_000,
    )
    client.buckets_api().create_bucket(bucket_name=bucket, org=env["WELLSENSE_INFLUX_ORG"])
    write_api = client.write_api(
        write_options=WriteOptions(batch_size=5000, flush_interval=100),
        success_callback=on_success,
    )
    started = time.monotonic()
    sent = 0
    for n in paced(rate, seconds):
        ts = time.time_ns()
        tags = f"device=d-{n % 1000},participant=p-{n % 1000},study=peer"
        lines = [f"hr,{tags} hr_bpm={70 + n % 20}i,contact=true,seq={n // 10}i {ts}"]
        lines.append(f"rr,{tags} rr_ms=801.0,seq={n // 10}i {ts}")
        if n % 3 == 0:
            lines.append(f"rr,{tags} rr_ms=812.5,seq={n // 10}i {ts - 790_250_000}")
        write_api.write(bucket=bucket, record=lines)
        sent = n + 1
    write_api.close()  # flushes
    elapsed = time.monotonic() - started
    client.close()
    return {
        "peer": "influxdb-client WriteApi (batch_size=5000, flush_interval=100 ms), direct",
        "offered_samples_per_s": rate,
        "samples_sent": sent,
        "samples_stored_acknowledged": written[0],
        "samples_per_s": round(written[0] / elapsed),
        "latency_ms": _summary(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per run")
    parser.add_argument("--rate", type=float, default=25_000.0, help="offered HR samples/s")
    parser.add_argument("--participants", type=int, nargs="*", default=[100, 1000, 10000])
    parser.add_argument("--workers", type=int, default=1, help="processing workers (shared)")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument(
        "--paths",
        nargs="*",
        choices=("direct", "guard"),
        default=["direct", "guard"],
        help="direct: processing -> InfluxDB; guard: the production path, through the guard",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="wellsense-bench-pipeline-"))
    work.chmod(0o755)
    services = ls.start_services(work / "services")
    try:
        runs = [
            run_pipeline(services, work, n, args.rate, args.seconds, args.workers, path == "guard")
            for n in args.participants
            for path in args.paths
        ]
        peer = None if args.no_peer else run_peer(services, args.rate, args.seconds)
    finally:
        services.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "pipeline",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "target": {"samples_per_s": 20_000, "p99_ms": 2000},
        "samples_per_message": SAMPLES_PER_MESSAGE,
        "runs": runs,
        "peer": peer,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
