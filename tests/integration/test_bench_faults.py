"""Smoke test of bench/faults.py: one cheap fault through the bench's own code.

The matrix itself is a benchmark (minutes to an hour), not part of the
suite; this keeps its code from rotting. Processing is SIGKILLed twice while
the emulated straps stream through the real collector, broker and InfluxDB.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import scratch_dir
from wellsense_cli.localservices import Influxd

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_faults", REPO / "bench" / "faults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_processing_sigkill_loses_and_duplicates_nothing(influxd: Influxd) -> None:
    faults = _bench()
    timing = faults.Timing(3, 3, 30, 20, 20, 15, 90)
    result = faults.run_fault("processing_sigkill", scratch_dir("faults"), influxd, timing)
    assert result["sent"] > 0, result
    assert result["stored"] == result["sent"], result
    assert (result["missing"], result["duplicated"]) == (0, 0), result
