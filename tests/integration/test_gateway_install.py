"""The gateway extra alone is enough for the collector's CLI: no NumPy, SciPy or InfluxDB."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_collect_help_works_with_only_the_gateway_extra(tmp_path: Path) -> None:
    env_dir = tmp_path / "gateway-venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{REPO}[gateway]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    missing = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([m for m in "
            "('numpy', 'scipy', 'influxdb_client', 'pandas') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert missing.stdout.strip() == "[]", "the gateway extra pulled in server packages"
    wellsense = env_dir / "bin" / "wellsense"
    top = subprocess.run([str(wellsense), "--help"], capture_output=True, text=True, check=True)
    assert "collect" in top.stdout and "process" in top.stdout
    collect = subprocess.run(
        [str(wellsense), "collect", "--help"], capture_output=True, text=True, check=True
    )
    assert "--config" in collect.stdout and "scan" in collect.stdout
    # A server command says what is missing instead of a traceback.
    process = subprocess.run([str(wellsense), "features", "--help"], capture_output=True, text=True)
    assert process.returncode == 1
    assert "numpy" in process.stderr and "Traceback" not in process.stderr
    assert sys.version_info >= (3, 11)
