"""Collector cost per notification and peak memory, next to a bare-bleak peer.

Runs the real collector (`wellsense collect`: bleak's BlueZ backend, parsing,
batching, the fsync'd outbox, MQTT publishing to a real Mosquitto) against the
emulated BlueZ with 4 sensors, at 1 Hz (a real strap) and under a 100 Hz
stress. The peer, in the same run and against the same emulator, is the
least a gateway can do: a bleak client that subscribes to the same
notifications and only counts them. The difference is what WellSense adds.

Prints one JSON object. Usage: python bench/collector.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.harness import Emulator, write_collector_config  # noqa: E402
from wellsense_cli import localservices as ls  # noqa: E402

PEER = r"""
import asyncio, sys
from bleak import BleakClient, BleakScanner
HRM = "00002a37-0000-1000-8000-00805f9b34fb"
async def one(device, counts):
    async with BleakClient(device) as client:
        await client.start_notify(HRM, lambda c, d: counts.__setitem__(0, counts[0] + 1))
        await asyncio.sleep(float(sys.argv[1]))
async def main():
    counts = [0]
    addrs = {f"C0:FF:EE:00:00:{i:02X}" for i in range(1, 5)}
    found = {}
    async with BleakScanner() as scanner:
        async for device, _ in scanner.advertisement_data():
            if device.address in addrs:
                found[device.address] = device
            if len(found) == len(addrs):
                break
    await asyncio.gather(*(one(d, counts) for d in found.values()))
    print(counts[0])
asyncio.run(main())
"""


def _proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user+sys) and peak RSS in KiB of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return cpu, hwm


def _run(
    argv: list[str], env: dict[str, str], seconds: float, log: Path
) -> tuple[float, int, float]:
    """Run a process for ``seconds`` (after a warm-up) and return CPU, peak RSS, CPU at warm-up."""
    proc = subprocess.Popen(
        argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO
    )
    time.sleep(8)  # connect and settle before measuring
    cpu0, _ = _proc_stats(proc.pid)
    time.sleep(seconds)
    cpu1, hwm = _proc_stats(proc.pid)
    proc.terminate()
    proc.wait(60)
    return cpu1 - cpu0, hwm, cpu0


def _hr_notifications(emulator: Emulator) -> int:
    return sum(int(s["hr_notifications"]) for s in emulator.stats())  # type: ignore[call-overload]


def _scenario(
    name: str, time_scale: float, max_hz: float, seconds: float, broker: ls.Mosquitto, work: Path
) -> dict[str, object]:
    out: dict[str, object] = {"scenario": name, "sensors": 4}
    for who in ("wellsense_collector", "peer_bare_bleak"):
        d = Path(tempfile.mkdtemp(dir=work))
        d.chmod(0o755)
        emu = Emulator(
            d, participants=4, time_scale=time_scale, extra_args=("--max-notify-hz", str(max_hz))
        ).start()
        env = {
            **os.environ,
            **emu.env,
            "PYTHONPATH": str(REPO),
            "WELLSENSE_MQTT_PASSWORD": broker.password,
        }
        try:
            if who == "wellsense_collector":
                config = write_collector_config(
                    d / "c.toml",
                    broker,
                    study="bench",
                    participants=4,
                    data_dir=d / "gw",
                    batch_interval_s=10,
                )
                argv = [
                    sys.executable,
                    "-m",
                    "wellsense_cli.main",
                    "collect",
                    "--config",
                    str(config),
                    "--log-level",
                    "warning",
                ]
            else:
                argv = [sys.executable, "-c", PEER, str(seconds + 10)]
            before = _hr_notifications(emu)
            t0 = time.monotonic()
            cpu, hwm, _ = _run(argv, env, seconds, d / "log")
            notifications = _hr_notifications(emu) - before
            elapsed = time.monotonic() - t0
        finally:
            emu.stop()
        # Notifications over the measured span only: scale by its share of the run.
        measured = notifications * seconds / elapsed
        out[who] = {
            "notifications_per_s": round(measured / seconds, 1),
            "cpu_us_per_notification": round(cpu / measured * 1e6, 1) if measured else None,
            "cpu_percent_of_one_core": round(100 * cpu / seconds, 2),
            "peak_rss_mib": round(hwm / 1024, 1),
        }
    ours, peer = out["wellsense_collector"], out["peer_bare_bleak"]
    assert isinstance(ours, dict) and isinstance(peer, dict)
    if ours["cpu_us_per_notification"] and peer["cpu_us_per_notification"]:
        out["cpu_ratio_vs_peer"] = round(
            ours["cpu_us_per_notification"] / peer["cpu_us_per_notification"], 2
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wellsense-bench-collector-"))
    work.chmod(0o755)
    broker = ls.Mosquitto(work / "mosquitto").start()
    try:
        results = [
            _scenario("4 sensors at 1 Hz", 1.0, 1.0, args.seconds, broker, work),
            _scenario("4 sensors at 100 Hz (stress)", 100.0, 100.0, args.seconds, broker, work),
        ]
    finally:
        broker.stop()
    print(
        json.dumps(
            {
                "benchmark": "collector",
                "peer": "bare bleak client counting notifications",
                "seconds": args.seconds,
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
