"""`wellsense demo`: one simulated day of three participants, end to end.

Starts (or reuses) the local Mosquitto and InfluxDB, the emulated BlueZ with
three simulated chest straps, the processing service and the gateway
collector (bleak's real BlueZ backend), runs a time-compressed day, then
prints what InfluxDB holds per participant and how to look further. The
services keep running afterwards so the data can be explored; stop them with
``make services-down``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wellsense_cli import demo_staff
from wellsense_cli import localservices as ls
from wellsense_resources import rules_dir

SERVICES_DIR = Path(".services")


@dataclass
class Run:
    directory: Path
    study: str
    participants: int
    time_scale: float
    day_start: dt.datetime


def _say(text: str) -> None:
    print(text, flush=True)


def _services(directory: Path) -> tuple[dict[str, str], bool]:
    """Settings of running local services, starting what is down; True if any started now.

    A second demo after ``make services-down`` reuses the data folder with its
    recorded token and ports (see ``localservices.ensure_services``).
    """
    services, started = ls.ensure_services(directory.resolve())
    return services.env(), bool(started)


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
    )


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _write_configs(run: Run, env: dict[str, str]) -> tuple[Path, Path]:
    d = run.directory
    sensors = "".join(
        f'\n[[sensor]]\nkey = "chest-{i}"\nparticipant = "p-{i:04d}"\n'
        f'device = "strap-{i:04d}"\naddress = "C0:FF:EE:00:00:{i:02X}"\n'
        for i in range(1, run.participants + 1)
    )
    collector = d / "collector.toml"
    collector.write_text(
        "# Written by `wellsense demo`; see deploy/gateway/collector.sample.toml\n"
        f'[gateway]\nstudy = "{run.study}"\nid = "gw-demo"\ndata_dir = "{d / "gateway"}"\n'
        f'[mqtt]\nurl = "{env["WELLSENSE_MQTT_URL"]}"\n'
        f'username = "{env["WELLSENSE_MQTT_USERNAME"]}"\nca_file = "{env["WELLSENSE_MQTT_CA"]}"\n'
        # batches close every simulated 6 min, so "last seen" stays fresh at x720
        "[batch]\nmax_interval_s = 0.5\nmax_samples = 200\n"
        "[ble]\nreconnect_min_s = 0.2\nreconnect_max_s = 5\nbattery_interval_s = 5\n"
        # health every simulated 12 min: the gateway-offline rule allows 30
        f"[health]\ninterval_s = 1\n{sensors}"
    )
    processing = d / "processing.toml"
    processing.write_text(
        "# Written by `wellsense demo`; see deploy/server/processing.sample.toml\n"
        f'[service]\nstudy = "{run.study}"\nworker = "demo"\nstats_interval_s = 10\n'
        "[features]\nsettle_s = 60\nidle_s = 5\n"
        f'[rules]\nenabled = true\ndirectory = "{rules_dir()}"\n'
        "interval_s = 5\n"
    )
    return collector, processing


def _records(env: dict[str, str], flux: str) -> list[Any]:
    """Run a Flux query (``flux`` follows ``from(bucket)``) and return its records."""
    from influxdb_client import InfluxDBClient

    query = f'from(bucket: "{env["WELLSENSE_INFLUX_BUCKET"]}") {flux}'
    with InfluxDBClient(
        url=env["WELLSENSE_INFLUX_URL"],
        token=env["WELLSENSE_INFLUX_TOKEN"],
        org=env["WELLSENSE_INFLUX_ORG"],
        timeout=30_000,
    ) as client:
        return [r for t in client.query_api().query(query) for r in t.records]


def _per_participant(
    env: dict[str, str],
    run: Run,
    measurement: str,
    field: str,
    window: tuple[str, str],
    fn: str = "count",
) -> dict[str, float]:
    """``fn`` (count, mean, median) of one field per participant over ``window``."""
    records = _records(
        env,
        f"|> range(start: {window[0]}, stop: {window[1]})"
        f' |> filter(fn: (r) => r._measurement == "{measurement}" and r.study == "{run.study}"'
        f' and r._field == "{field}") |> group(columns: ["participant"]) |> {fn}()',
    )
    return {str(r.values.get("participant")): float(r.get_value()) for r in records}


def _counts(
    env: dict[str, str], run: Run, measurement: str, field: str, window: tuple[str, str]
) -> dict[str, int]:
    return {p: int(n) for p, n in _per_participant(env, run, measurement, field, window).items()}


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            _stop(proc, 30)


def _progress(
    run: Run, env: dict[str, str], started: float, real_s: float, window: tuple[str, str]
) -> None:
    elapsed = time.monotonic() - started
    sim = run.day_start + dt.timedelta(seconds=elapsed * run.time_scale)
    try:
        stored = sum(_counts(env, run, "hr", "hr_bpm", window).values())
    except Exception:  # progress is best effort; the summary reports errors
        stored = -1
    bar = "#" * int(20 * min(1.0, elapsed / real_s))
    _say(
        f"  [{bar:<20}] simulated {sim:%H:%M} UTC, {elapsed:5.0f}/{real_s:.0f} s, "
        f"{stored if stored >= 0 else '?'} HR samples stored"
    )


def run_demo(args: argparse.Namespace) -> int:
    repo = Path(__file__).resolve().parents[1]
    now = dt.datetime.now(dt.UTC)
    day_start = (now - dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    run = Run(
        directory=Path(args.dir).resolve(),
        study=f"demo-{now:%Y%m%d%H%M%S}",
        participants=args.participants,
        time_scale=86400.0 / args.seconds,
        day_start=day_start,
    )
    shutil.rmtree(run.directory, ignore_errors=True)
    run.directory.mkdir(parents=True)
    window = (
        f"{day_start:%Y-%m-%dT%H:%M:%SZ}",
        f"{day_start + dt.timedelta(days=1, hours=1):%Y-%m-%dT%H:%M:%SZ}",
    )

    _say(
        f"WellSense demo: {run.participants} participants, one simulated day "
        f"({day_start:%Y-%m-%d}) in about {args.seconds:.0f} s (x{run.time_scale:.0f}); "
        f"study id {run.study}"
    )
    _say("[1/5] local Mosquitto (TLS, password, ACL) and InfluxDB 2.x ...")
    try:
        env, started_now = _services(Path(args.services_dir))
    except ls.ServiceError as exc:
        print(f"wellsense demo: {exc}", file=sys.stderr)
        return 1
    _say(
        f"      {'started' if started_now else 'already running'}: broker "
        f"{env['WELLSENSE_MQTT_URL']}, database {env['WELLSENSE_INFLUX_URL']}"
    )
    child_env = {**os.environ, **env, "PYTHONPATH": str(repo)}
    py = sys.executable
    with _processes() as procs:
        _say(
            f"[2/5] emulated BlueZ on a private D-Bus with {run.participants} simulated chest "
            "straps (HR, RR, activity, battery) ..."
        )
        sim_env_file = run.directory / "sim.env"
        epoch_ns = int(day_start.timestamp()) * 10**9
        procs.append(
            _spawn(
                [
                    py,
                    "-m",
                    "wellsense_sim",
                    "run",
                    "--participants",
                    str(run.participants),
                    "--time-scale",
                    str(run.time_scale),
                    "--epoch",
                    str(epoch_ns),
                    "--env-file",
                    str(sim_env_file),
                ],
                run.directory / "emulator.log",
                child_env,
            )
        )
        deadline = time.monotonic() + 30
        while not sim_env_file.exists():
            if time.monotonic() > deadline or procs[-1].poll() is not None:
                print(
                    "wellsense demo: the emulator did not start; see "
                    f"{run.directory / 'emulator.log'}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.1)
        sim_env = dict(
            line.split("=", 1) for line in sim_env_file.read_text().splitlines() if "=" in line
        )
        collector_conf, processing_conf = _write_configs(run, env)
        inbox, notify_toml = demo_staff.start_inbox(run.directory, child_env)
        second_conf = demo_staff.two_workers(processing_conf, notify_toml)
        _say("[3/5] processing service (validate, de-duplicate, write, compute features) ...")
        procs.append(
            _spawn(
                [py, "-m", "wellsense_cli.main", "process", "--config", str(processing_conf)],
                run.directory / "processing.log",
                {**child_env, **sim_env},  # alert rules run on the simulated clock
            )
        )
        procs.append(
            _spawn(
                [py, "-m", "wellsense_cli.main", "process", "--config", str(second_conf)],
                run.directory / "processing-2.log",
                {**child_env, **sim_env},
            )
        )
        demo_staff.wait_connected(run.directory, procs[1:3])  # before the first message
        _say("[4/5] gateway collector (bleak -> outbox -> MQTT) ...")
        collector = _spawn(
            [py, "-m", "wellsense_cli.main", "collect", "--config", str(collector_conf)],
            run.directory / "collector.log",
            {**child_env, **sim_env},
        )
        procs.append(collector)
        procs.append(inbox)
        started = time.monotonic()
        strap_off = "pending"
        while time.monotonic() - started < args.seconds:
            time.sleep(min(10.0, args.seconds - (time.monotonic() - started)))
            for proc, name in ((procs[1], "processing"), (collector, "collector")):
                if proc.poll() is not None:
                    print(
                        f"wellsense demo: {name} stopped (exit {proc.returncode}); see "
                        f"{run.directory / (name + '.log')}",
                        file=sys.stderr,
                    )
                    return 1
            _progress(run, env, started, args.seconds, window)
            strap_off = _strap_off_script(
                run, py, sim_env, time.monotonic() - started, args.seconds, strap_off
            )
        _say("      day over: stopping the collector (it flushes its outbox first) ...")
        _say(_emulator_line(py, sim_env, run.time_scale))
        _stop(collector)
        _say("      letting processing finish the last windows and daily features ...")
        _wait_for_features(env, run, window)
    code = _summary(env, run, window, Path(args.services_dir).resolve())
    _say(demo_staff.finish(run.directory, run.study, child_env, run.participants))
    return code


def _strap_off_script(
    run: Run, py: str, sim_env: dict[str, str], elapsed: float, total: float, state: str
) -> str:
    """The last participant takes the strap off late morning and puts it on after lunch.

    Shows the wear rule at work: it fires while the strap is off and
    resolves when it is back on.
    """
    address = f"C0:FF:EE:00:00:{run.participants:02X}"
    who = f"p-{run.participants:04d}"
    action = None
    if state == "pending" and elapsed >= 0.40 * total:
        action, state = "off", "off"
        _say(f"      {who} takes the strap off (the emulator stops their skin contact) ...")
    elif state == "off" and elapsed >= 0.58 * total:
        action, state = "on", "done"
        _say(f"      {who} puts the strap back on ...")
    if action:
        subprocess.run(
            [
                py,
                "-m",
                "wellsense_sim",
                "ctl",
                "--bus",
                sim_env["DBUS_SYSTEM_BUS_ADDRESS"],
                "worn",
                address,
                action,
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
    return state


def _emulator_line(py: str, sim_env: dict[str, str], run_scale: float) -> str:
    """What the straps sent, and how late (the chain's limit shows up as lag)."""
    out = subprocess.run(
        [py, "-m", "wellsense_sim", "ctl", "--bus", sim_env["DBUS_SYSTEM_BUS_ADDRESS"], "stats"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    try:
        stats = json.loads(out.stdout)
    except ValueError:
        return "      (emulator statistics unavailable)"
    sent = sum(int(s["hr_notifications"]) for s in stats)
    lag_s = max((float(s["max_delivery_lag_ms"]) for s in stats), default=0.0) / 1000
    return (
        f"      straps sent {sent:,} heart-rate notifications, each on its strap's own 1 s "
        f"cadence; the latest went out {lag_s:,.0f} simulated s "
        f"({1000 * lag_s / run_scale:,.0f} ms real) after its time"
    )


def _wait_for_features(env: dict[str, str], run: Run, window: tuple[str, str]) -> None:
    last: tuple[int, int] | None = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(5)
        counts = (
            sum(_counts(env, run, "hr", "hr_bpm", window).values()),
            sum(_counts(env, run, "hrv_window", "n_rr", window).values()),
        )
        if counts == last:
            return
        last = counts


def _sequence_check(
    env: dict[str, str], run: Run, window: tuple[str, str]
) -> dict[str, tuple[int, int]]:
    """Per participant: messages stored and sequence numbers missing (exactly-once check)."""
    records = _records(
        env,
        f"|> range(start: {window[0]}, stop: {window[1]})"
        f' |> filter(fn: (r) => r.study == "{run.study}" and r._field == "seq" and'
        ' (r._measurement == "hr" or r._measurement == "activity" or'
        ' r._measurement == "device_status"))'
        ' |> group(columns: ["participant", "device"]) |> unique()'
        " |> reduce(identity: {n: 0, hi: 0}, fn: (r, accumulator) => ({n: accumulator.n + 1,"
        " hi: if r._value > accumulator.hi then r._value else accumulator.hi}))",
    )
    out = {}
    for r in records:
        n, hi = int(r.values["n"]), int(r.values["hi"])
        # Sequence numbers start at 0; the gateway's health stream has its own device.
        out[str(r.values.get("participant"))] = (n, hi + 1 - n)
    return out


def _alerts(
    env: dict[str, str], run: Run, window: tuple[str, str]
) -> list[tuple[str, str, str, str]]:
    """(time, subject, rule, state) of every alert event of the run."""
    records = _records(
        env,
        f"|> range(start: {window[0]}, stop: {window[1]})"
        f' |> filter(fn: (r) => r._measurement == "alert" and r.study == "{run.study}"'
        ' and r._field == "state") |> group() |> sort(columns: ["_time"])',
    )
    return [
        (
            f"{r.get_time():%H:%M}",
            str(r.values.get("participant") or r.values.get("gateway")),
            str(r.values.get("rule")),
            str(r.get_value()),
        )
        for r in records
    ]


def _summary(env: dict[str, str], run: Run, window: tuple[str, str], services_dir: Path) -> int:
    hr = _counts(env, run, "hr", "hr_bpm", window)
    rr = _counts(env, run, "rr", "rr_ms", window)
    act = _counts(env, run, "activity", "cadence_spm", window)
    status = _counts(env, run, "device_status", "seq", window)
    hrv = _counts(env, run, "hrv_window", "n_rr", window)
    rmssd = _per_participant(env, run, "hrv_window", "rmssd_ms", window, "median")
    daily = _counts(env, run, "daily", "hr_samples", window)
    hr_mean = _per_participant(env, run, "daily", "hr_mean", window, "mean")
    sequences = _sequence_check(env, run, window)
    _say("[5/5] what InfluxDB now holds for the simulated day:\n")
    header = (
        f"  {'participant':<12}{'HR samples':>11}{'RR beats':>10}{'activity':>10}"
        f"{'status':>8}{'HRV 5-min':>10}{'RMSSD med':>10}{'days':>6}{'HR mean':>9}"
    )
    _say(header)
    _say("  " + "-" * (len(header) - 2))
    for i in range(1, run.participants + 1):
        p = f"p-{i:04d}"
        _say(
            f"  {p:<12}{hr.get(p, 0):>11,}{rr.get(p, 0):>10,}{act.get(p, 0):>10,}"
            f"{status.get(p, 0):>8,}{hrv.get(p, 0):>10,}"
            f"{rmssd.get(p, float('nan')):>10.1f}{daily.get(p, 0):>6}"
            f"{hr_mean.get(p, float('nan')):>9.1f}"
        )
    ok = all(
        hr.get(f"p-{i:04d}", 0) > 0 and hrv.get(f"p-{i:04d}", 0) > 0
        for i in range(1, run.participants + 1)
    )
    alerts = _alerts(env, run, window)
    if alerts:
        _say("\n  Alerts for the study team (screening signals, not diagnoses):")
        for when, subject, rule, state in alerts[:12]:
            _say(f"    {when} UTC  {subject:<10} {rule:<28} {state}")
        if len(alerts) > 12:
            _say(f"    ... and {len(alerts) - 12} more (wellsense query alert)")
    else:
        _say("\n  No alerts fired (rules in rules/*.toml).")
    messages = sum(n for n, _ in sequences.values())
    missing = sum(m for _, m in sequences.values())
    from wellsense_cli.services import env_hint, stop_hint

    _say(f"""
Every participant {"has" if ok else "does NOT have"} raw samples and HRV features.
Exactly once: {messages:,} gateway messages stored, {missing} sequence numbers missing
(each sample is stored at its own timestamp, so a redelivered message cannot count twice).
Logs and configs: {run.directory}/ (collector.log, processing.log, emulator.log)

Look further (the services are still running):
  {env_hint(services_dir):<39} # the eight WELLSENSE_* settings
  export WELLSENSE_STUDY={run.study}
  .venv/bin/wellsense query participants
  .venv/bin/wellsense query hrv_window -p p-0001 --from {window[0][:10]} --to {window[0][:10]}
  .venv/bin/wellsense report -p p-0001 --from {window[0][:10]} --to {window[0][:10]} \\
      --out report.html
  {stop_hint(services_dir):<39} # stop Mosquitto and InfluxDB when done
""")
    return 0 if ok and missing == 0 else 1


def main(argv: list[str], prog: str = "wellsense demo") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=3, help="simulated participants (3)")
    parser.add_argument(
        "--seconds", type=float, default=120.0, help="real seconds for the simulated day (120)"
    )
    parser.add_argument("--dir", default=".demo", help="logs and configs (.demo)")
    parser.add_argument(
        "--services-dir",
        default=str(SERVICES_DIR),
        help="local Mosquitto/InfluxDB state, shared with 'make services-up' (.services)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.participants <= 50:
        parser.error("--participants must be 1..50")
    if args.seconds < 20:
        parser.error("--seconds must be at least 20")
    return run_demo(args)
