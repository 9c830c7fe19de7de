"""Data minimisation on the gateway: raw data stays home, features equal the server's."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collector import wire
from collector.batcher import Batcher, Route
from collector.commands import Command, CommandHandler, Withdrawal, WithdrawalStore
from collector.minimise import Minimiser, window_features
from collector.outbox import Outbox
from collector.rawstore import NS_PER_DAY, RawStore
from processing import schema
from processing.features.hrv import HRV_KEYS, hrv_window_at, hrv_windows
from tests.unit.features_data import require

REPO = Path(__file__).resolve().parents[2]
STUDY, GW = "pilot", "gw-1"
ROUTE = Route("p-1", "gw-1-chest")
W = 300
T0 = 1_764_115_200 * 10**9  # 2025-11-26T00:00:00Z, a window boundary
CLOCK = wire.ClockQuality(True, "sim", 1.0)


class Clocks:
    """Injected sample clock (ns) and monotonic clock (s)."""

    def __init__(self) -> None:
        self.ns = T0
        self.mono = 0.0


def notifications(rr_ms: list[float], start_ns: int = T0, per: int = 2) -> list[wire.HrSample]:
    """HR notifications carrying ``per`` RR intervals each; the last one ends at ``ts_ns``."""
    out, t = [], start_ns
    for i in range(0, len(rr_ms), per):
        chunk = tuple(rr_ms[i : i + per])
        t += sum(round(r * 1_000_000) for r in chunk)
        out.append(wire.HrSample(t, round(60_000 / chunk[-1]), True, None, chunk))
    return out


@dataclass
class Gateway:
    minimiser: Minimiser
    batcher: Batcher
    outbox: Outbox
    store: RawStore
    clocks: Clocks


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    clocks = Clocks()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    store = RawStore(tmp_path / "raw.sqlite3", keep_raw_days=7, clock=lambda: clocks.ns)
    batcher = Batcher(
        outbox=outbox,
        study=STUDY,
        gateway=GW,
        clock_quality=lambda: CLOCK,
        wall_ns=lambda: clocks.ns,
        max_samples=50,
    )
    minimiser = Minimiser(
        store=store,
        batcher=batcher,
        routes={"chest": ROUTE},
        window_s=W,
        now_ns=lambda: clocks.ns,
        monotonic=lambda: clocks.mono,
        tick_interval_s=0.0,
    )
    batcher.raw_sink = minimiser.keep
    yield Gateway(minimiser, batcher, outbox, store, clocks)
    store.close()
    outbox.close()


def sent(outbox: Outbox) -> list[wire.Message]:
    return [wire.decode(m.payload, topic=m.topic) for m in outbox.peek(10_000)]


def real_rr(n: int) -> list[float]:
    path = require("rr/healthy-irurzun") / "003.txt"
    return [float(x) for x in path.read_text().split()[:n]]


# --------------------------------------------------------------------------- features


def test_wire_knows_exactly_the_hrv_keys_of_the_feature_functions() -> None:
    assert wire.HRV_FEATURE_KEYS == HRV_KEYS


def test_features_equal_processing_hrv_on_the_same_rr(gateway: Gateway) -> None:
    g = gateway
    minimiser, batcher, outbox, clocks = g.minimiser, g.batcher, g.outbox, g.clocks
    samples = notifications(real_rr(2000))
    for s in samples:
        batcher.add(ROUTE, "hr", s)
    batcher.flush_all()
    clocks.ns = samples[-1].ts_ns
    minimiser.tick()
    features = [s for m in sent(outbox) for s in m.samples]
    assert len(features) >= 4 and all(isinstance(f, wire.FeaturesSample) for f in features)

    # What processing stores for the same notifications: its rr points.
    message = wire.Message("hr", STUDY, "p-1", ROUTE.device, GW, 0, T0, CLOCK, tuple(samples))
    rr_points = [ln for ln in schema.message_lines(message) if ln.startswith("rr,")]
    t_ns = np.array([int(ln.rsplit(" ", 1)[1]) for ln in rr_points], dtype=np.int64)
    rr = np.array([float(ln.split("rr_ms=")[1].split(",")[0]) for ln in rr_points])
    for f in features:
        assert isinstance(f, wire.FeaturesSample)
        inside = (t_ns >= f.ts_ns) & (t_ns < f.ts_ns + W * 10**9)
        # The server's feature job (featurejobs) on those points: bit for bit.
        server = hrv_window_at(t_ns[inside], rr[inside], start_ns=f.ts_ns, window_s=W)
        assert server is not None
        for key in HRV_KEYS:
            value = f.feature_values()[key]
            assert (value is None and math.isnan(server[key])) or value == server[key], key
        assert (f.n_beats, f.n_rr, f.flags) == (server["n_beats"], inside.sum(), server["flags"])
        assert list(f.quality) == server["quality"] and f.coverage == server["coverage"]
        # And processing.features.hrv.hrv_windows on the window's beats directly.
        direct = hrv_windows(
            (t_ns[inside] - f.ts_ns) / 1e9, rr[inside], window_s=W, origin_s=0.0
        ).rows()[0]
        for key in HRV_KEYS:
            value = f.feature_values()[key]
            assert value is None or value == pytest.approx(direct[key], rel=1e-12), key


def test_window_features_map_nan_to_none_and_need_a_beat() -> None:
    sample = window_features([T0 + 10**9], [1000.0], start_ns=T0, window_s=W)
    assert sample is not None and sample.rmssd_ms is None and "too_few_beats" in sample.quality
    assert sample.n_rr == 1 and sample.ts_ns == T0
    assert window_features([], [], start_ns=T0, window_s=W) is None


# --------------------------------------------------------------------------- what leaves


def test_raw_stays_home_and_only_features_and_status_reach_the_outbox(gateway: Gateway) -> None:
    g = gateway
    minimiser, batcher, outbox, store, clocks = g.minimiser, g.batcher, g.outbox, g.store, g.clocks
    samples = notifications([800.0 + 10 * (i % 7) for i in range(1200)])
    for s in samples:
        batcher.add(ROUTE, "hr", s)
    batcher.add(ROUTE, "activity", wire.ActivitySample(T0 + 5 * 10**9, 100.0, 1.2, 3, None))
    batcher.add(ROUTE, "status", wire.StatusSample(T0, "battery", 80, None, ""))
    batcher.flush_all()
    clocks.ns = samples[-1].ts_ns
    minimiser.tick()
    streams = [m.stream for m in sent(outbox)]
    assert set(streams) == {"features", "status"} and streams.count("features") >= 3
    assert store.stats().rows == {"hr": len(samples), "rr": 1200, "activity": 1}
    # Sequence numbers count only what was sent.
    assert sorted(m.seq for m in sent(outbox)) == list(range(len(streams)))


def test_windows_close_by_data_time_or_after_a_quiet_window_and_go_once(
    gateway: Gateway,
) -> None:
    g = gateway
    minimiser, batcher, outbox, store, clocks = g.minimiser, g.batcher, g.outbox, g.store, g.clocks
    first = notifications([1000.0] * 250)  # 250 s: inside the first window only
    for s in first:
        batcher.add(ROUTE, "hr", s)
    batcher.flush_all()
    clocks.ns = first[-1].ts_ns
    assert minimiser.tick() == 0  # still open: no newer data, clock inside
    clocks.ns = T0 + 2 * W * 10**9 - 1
    assert minimiser.tick() == 0  # quiet, but not yet a whole window past its end
    clocks.ns = T0 + 2 * W * 10**9
    assert minimiser.tick() == 1  # strap off for a window: closed anyway
    later = notifications([1000.0] * 320, start_ns=T0 + 3 * W * 10**9)
    for s in later:
        batcher.add(ROUTE, "hr", s)
    batcher.flush_all()
    assert minimiser.tick() == 1  # data past its end closes the 4th window...
    assert minimiser.tick() == 0  # ...and the 5th stays open
    starts = [s.ts_ns for m in sent(outbox) for s in m.samples]
    assert starts == [T0, T0 + 3 * W * 10**9]
    # After a restart nothing already sent is sent again.
    again = Minimiser(
        store=store, batcher=batcher, routes={"chest": ROUTE}, window_s=W,
        now_ns=lambda: clocks.ns, monotonic=lambda: clocks.mono, tick_interval_s=0.0,
    )  # fmt: skip
    assert again.tick() == 0 and store.done_until(ROUTE.device) == T0 + 4 * W * 10**9


# --------------------------------------------------------------------------- the raw store


def test_raw_store_is_wal_durable_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "raw.sqlite3"
    with RawStore(path, keep_raw_days=7) as store:
        store.store("p-1", "d-1", "hr", notifications([900.0, 950.0, 1000.0], per=3))
        store.mark_done("d-1", T0)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with RawStore(path, keep_raw_days=7) as store:
        times, rr = store.beats("d-1", 0, 2**62)
        assert rr == [900.0, 950.0, 1000.0]
        assert times == wire.rr_beat_times_ns(T0 + 2_850_000_000, (900.0, 950.0, 1000.0))
        assert store.done_until("d-1") == T0 and store.stats().counters["windows_sent"] == 1


def test_purge_deletes_only_what_is_older_than_keep_raw_days(tmp_path: Path) -> None:
    now = [T0]
    store = RawStore(tmp_path / "raw.sqlite3", keep_raw_days=7, clock=lambda: now[0])
    for day in range(10):
        start = T0 + day * NS_PER_DAY
        store.store("p-1", "d-1", "hr", notifications([1000.0] * 4, start_ns=start))
        store.store("p-1", "d-1", "activity", [wire.ActivitySample(start, None, None, 5, None)])
    assert store.purge_expired() == {"hr": 0, "rr": 0, "activity": 0}
    # 7 days and 1 s after the start of day 2: days 0 and 1 go, and day 2's
    # activity sample at exactly midnight (its heart rate comes seconds later).
    now[0] = T0 + 9 * NS_PER_DAY + 10**9
    purged = store.purge_expired()
    assert purged == {"hr": 4, "rr": 8, "activity": 3}
    stats = store.stats()
    assert stats.rows == {"hr": 16, "rr": 32, "activity": 7}
    assert stats.counters["purged_rr"] == 8 and stats.counters["stored_hr"] == 20
    assert store.purge_expired() == {"hr": 0, "rr": 0, "activity": 0}
    times, _ = store.beats("d-1", 0, 2**62)
    assert min(times) >= now[0] - 7 * NS_PER_DAY
    store.close()


def test_minimiser_purges_periodically(gateway: Gateway) -> None:
    g = gateway
    minimiser, store, clocks = g.minimiser, g.store, g.clocks
    store.store("p-1", "d-1", "hr", notifications([1000.0] * 3))
    clocks.ns = T0 + 8 * NS_PER_DAY
    clocks.mono = 10.0
    minimiser.tick()  # the first tick purges
    assert store.stats().rows["hr"] == 0
    store.store("p-1", "d-1", "hr", notifications([1000.0] * 3))
    clocks.mono = 20.0
    minimiser.tick()  # not due again yet
    assert store.stats().rows["hr"] == 2
    clocks.mono = 10.0 + minimiser.purge_interval_s
    minimiser.tick()
    assert store.stats().rows["hr"] == 0


def test_erasure_purges_the_local_raw_store_too(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    store = RawStore(tmp_path / "raw.sqlite3", keep_raw_days=7)
    store.store("p-1", "d-1", "hr", notifications([1000.0] * 4))
    store.store("p-2", "d-2", "hr", notifications([1000.0] * 4))
    acks: list[dict[str, Any]] = []
    handler = CommandHandler(
        study=STUDY,
        gateway=GW,
        store=WithdrawalStore(tmp_path),
        outbox=outbox,
        on_withdraw=lambda _p: None,
        acknowledge=acks.append,
        raw_store=store,
    )
    handler.apply(Command("c-1", STUDY, GW, T0, (Withdrawal("p-1", True),)))
    assert acks[-1]["raw_purged"] == {"p-1": 6}  # 2 hr samples + 4 beats
    assert store.stats().rows == {"hr": 2, "rr": 4, "activity": 0}
    assert store.beats("d-1", 0, 2**62) == ([], [])
    store.close()
    outbox.close()


# --------------------------------------------------------------------------- the extra


def test_collector_works_without_numpy_until_minimisation_is_enabled() -> None:
    code = (
        "import sys\n"
        "sys.modules['numpy'] = None; sys.modules['scipy'] = None\n"
        "import collector.service, collector.minimise\n"
        "from collector.cli import main\n"
        "try:\n"
        "    collector.minimise.load_window_function()\n"
        "except collector.minimise.MinimiseUnavailableError as exc:\n"
        "    print('refused:', exc)\n"
        "main(['--help'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "refused: [minimise] enabled needs NumPy and SciPy" in run.stdout
    assert "wellsense[minimise]" in run.stdout and "--config" in run.stdout


def test_a_window_waits_for_beats_placed_before_an_earlier_arrival(gateway: Gateway) -> None:
    g = gateway
    end = T0 + W * 10**9
    first = notifications([1000.0] * 304)  # data to 4 s past the window's end
    for s in first:
        g.batcher.add(ROUTE, "hr", s)
    g.batcher.flush_all()
    g.clocks.ns = first[-1].ts_ns
    assert g.minimiser.tick() == 0  # inside the close margin: still open
    # the beat clock put this notification's first beat before the end, although
    # it arrived after notifications already stored past the end
    late = wire.HrSample(end + 12 * 10**9, 60, True, None, (995.0, 1000.0),
                         beat_ns=end + 950_000_000, rr_break=False)  # fmt: skip
    g.batcher.add(ROUTE, "hr", late)
    g.batcher.flush_all()
    assert g.minimiser.tick() == 1
    (features,) = [s for m in sent(g.outbox) for s in m.samples]
    assert isinstance(features, wire.FeaturesSample)
    assert features.n_rr == 300  # the 299 beats of [T0, end) plus the late one
