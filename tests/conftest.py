"""Suite-wide fixtures: the suite's own real Mosquitto and InfluxDB 2.x.

They are started once per test session on free loopback ports in a scratch
directory and stopped (by pid) at the end; tests never use services that a
developer happens to have running.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from wellsense_cli import localservices as ls

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WELLSENSE_SHARED_DATA", REPO.parent / "shared" / "data"))


def scratch_dir(prefix: str) -> Path:
    # Under /tmp with 0755 so a broker that drops root to its own user can read it.
    path = Path(tempfile.mkdtemp(prefix=f"wellsense-{prefix}-"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[ls.Mosquitto]:
    directory = scratch_dir("mosquitto")
    broker = ls.Mosquitto(directory).start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def influxd() -> Iterator[ls.Influxd]:
    directory = scratch_dir("influxd")
    server = ls.Influxd(directory).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
