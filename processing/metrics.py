"""The service's own counters: a ``wellsense_self`` point and a JSON log line per interval.

Counters are cumulative since the process started (like Prometheus counters:
a restart resets them, so rates are taken per ``worker`` and start time);
latency and lag percentiles cover the last interval only.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from processing import schema

# Percentiles come from a bounded sample of the interval: memory stays flat at any rate.
_MAX_SAMPLES = 20_000


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


@dataclass
class Metrics:
    """Mutable counters owned by the worker thread (no locking needed)."""

    study: str
    worker: str
    started_ns: int = field(default_factory=time.time_ns)
    received: int = 0
    messages_written: int = 0
    points_written: int = 0
    samples_written: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    #: impossible samples left out of otherwise valid messages, by reason
    samples_dropped: Counter[str] = field(default_factory=Counter)
    clock_steps: int = 0  # gateway clock steps back seen in beat times
    dead_evicted: int = 0  # dead letters the bounded store deleted (from its file)
    duplicates: int = 0
    erased_discarded: int = 0  # messages of erased participants (processing/tombstones.py)
    confirmations: int = 0  # storage confirmation messages published to gateways
    gaps: int = 0
    missing_seq: int = 0
    late: int = 0
    retries: int = 0
    splits: int = 0
    features_computed: int = 0
    inflight: int = 0
    _write_latency_s: list[float] = field(default_factory=list)
    _lag_s: list[float] = field(default_factory=list)

    def observe_write(self, latency_s: float) -> None:
        if len(self._write_latency_s) < _MAX_SAMPLES:
            self._write_latency_s.append(latency_s)

    def observe_lag(self, lag_s: float) -> None:
        if len(self._lag_s) < _MAX_SAMPLES:
            self._lag_s.append(lag_s)

    def snapshot(self) -> dict[str, Any]:
        """All values, then reset the per-interval latency samples."""
        lat, lag = self._write_latency_s, self._lag_s
        self._write_latency_s, self._lag_s = [], []
        values: dict[str, Any] = {
            "received": self.received,
            "messages_written": self.messages_written,
            "points_written": self.points_written,
            "samples_written": self.samples_written,
            "dead_lettered": sum(self.dead_lettered.values()),
            "duplicates": self.duplicates,
            "erased_discarded": self.erased_discarded,
            "confirmations": self.confirmations,
            "gaps": self.gaps,
            "missing_seq": self.missing_seq,
            "late": self.late,
            "retries": self.retries,
            "splits": self.splits,
            "features_computed": self.features_computed,
            "inflight": self.inflight,
            "write_p50_ms": percentile(lat, 50) * 1000,
            "write_p99_ms": percentile(lat, 99) * 1000,
            "lag_p50_ms": percentile(lag, 50) * 1000,
            "lag_p99_ms": percentile(lag, 99) * 1000,
            "lag_max_ms": max(lag) * 1000 if lag else float("nan"),
        }
        for reason, count in sorted(self.dead_lettered.items()):
            values[f"dead_{reason}"] = count
        values["samples_dropped"] = sum(self.samples_dropped.values())
        for reason, count in sorted(self.samples_dropped.items()):
            values[f"dropped_{reason}"] = count
        values["dead_evicted"] = self.dead_evicted
        values["clock_steps"] = self.clock_steps
        return values

    def line(self, values: dict[str, Any], ts_ns: int) -> str | None:
        """``values`` as a ``wellsense_self`` point (NaN percentiles are left out)."""
        fields = {k: (float(v) if k.endswith("_ms") else v) for k, v in values.items()}
        return schema.line(
            "wellsense_self", {"study": self.study, "worker": self.worker}, fields, ts_ns
        )
