"""A small, deterministic synthetic study: for tests, docs and trying the tools out.

Each participant wears a strap and a step counter for ``days`` local days:

* sleep from about 23:00 to 07:00 (per-night jitter, known exactly:
  :meth:`SyntheticStudy.sleep_truth`), activity counts 1-6/min asleep (never
  zero, so it is not non-wear), 150-900/min awake, an exercise block at 17:00
  (2 500-4 000 counts/min, known length: :meth:`SyntheticStudy.exercise_truth`);
* HR every ``hr_period_s`` while worn, and beat-to-beat RR (one notification
  per beat, with respiratory sinus arrhythmia and one artefact) from 02:00 to
  02:00 + ``rr_minutes``;
* every third day the strap is off from 13:00 to 15:00 (zero counts, no HR),
  which the ``low_wear`` alert reports; the last participant skips day 2 entirely;
* self-reports with known biases (:data:`SLEEP_BIAS_H`, :data:`ACTIVITY_FACTOR`):
  a morning sleep diary, an evening mood and activity EMA, PHQ-9 weekly.

Raw data are wire-contract messages (:meth:`SyntheticStudy.messages`) turned
into points by the service's own ``processing.schema.message_lines``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from collector import wire
from processing import schema

NS = 1_000_000_000
SLEEP_BIAS_H = (0.75, -0.25, 0.5)  # self-reported minus true sleep, per participant
ACTIVITY_FACTOR = 1.5  # people report 1.5 x their true exercise minutes
_CLOCK = wire.ClockQuality(True, "sim", 5.0)


@dataclass(frozen=True)
class SyntheticStudy:
    study: str
    participants: tuple[str, ...] = ("p-alpha", "p-bravo")
    start: dt.date = dt.date(2025, 11, 1)
    days: int = 10
    timezone: str = "Europe/Oslo"
    hr_period_s: int = 60
    rr_minutes: int = 20
    seed: int = 7

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_ns(self, day: dt.date, minutes: float) -> int:
        """ns of local ``day`` 00:00 + ``minutes``."""
        midnight = dt.datetime.combine(day, dt.time(), self.tz)
        return int(midnight.timestamp()) * NS + round(minutes * 60 * NS)

    def day(self, i: int) -> dt.date:
        return self.start + dt.timedelta(days=i)

    def present(self, p: int, d: int) -> bool:
        return not (p == len(self.participants) - 1 and d == 2)

    def strap_off(self, d: int) -> bool:
        return d % 3 == 1

    # -- the truth ---------------------------------------------------------------------

    def _jitter(self, p: int, d: int) -> tuple[int, int, int]:
        rng = np.random.default_rng([self.seed, p, d + 1000])
        onset = int(rng.integers(-40, 41))  # minutes around 23:00 of day d
        offset = int(rng.integers(-40, 41))  # minutes around 07:00 of day d + 1
        exercise = int(rng.integers(20, 61))
        return onset, offset, exercise

    def sleep_truth(self, p: int, d: int) -> tuple[int, int]:
        """(onset, offset) ns of the night starting on the evening of day ``d``."""
        onset, offset, _ = self._jitter(p, d)
        return (
            self.local_ns(self.day(d), 23 * 60 + onset),
            self.local_ns(self.day(d + 1), 7 * 60 + offset),
        )

    def exercise_truth(self, p: int, d: int) -> int:
        """Minutes of exercise (>= 2 500 counts/min) at 17:00 on day ``d``."""
        return self._jitter(p, d)[2]

    # -- raw data -------------------------------------------------------------------

    def messages(self) -> Iterator[wire.Message]:
        for p, participant in enumerate(self.participants):
            seq = 0
            for d in range(self.days):
                if not self.present(p, d):
                    continue
                for stream, samples in self._day(p, d):
                    for k in range(0, len(samples), 2000):
                        batch = tuple(samples[k : k + 2000])
                        yield wire.Message(
                            stream=stream,
                            study=self.study,
                            participant=participant,
                            device=f"d-{participant[2:]}",
                            gateway=f"gw-{participant[2:]}",
                            seq=seq,
                            sent_ns=batch[-1].ts_ns,
                            clock=_CLOCK,
                            samples=batch,
                        )
                        seq += 1

    def _day(self, p: int, d: int) -> list[tuple[str, list[wire.Sample]]]:
        rng = np.random.default_rng([self.seed, p, d, 1])
        day = self.day(d)
        elevated = 8.0 if (p == 0 and d >= self.days - 2) else 0.0
        off = (self.local_ns(day, 13 * 60), self.local_ns(day, 15 * 60))
        ex_start = self.local_ns(day, 17 * 60)
        ex_end = ex_start + self.exercise_truth(p, d) * 60 * NS
        rr_start = self.local_ns(day, 2 * 60)
        rr_end = rr_start + self.rr_minutes * 60 * NS
        nights = (self.sleep_truth(p, d - 1), self.sleep_truth(p, d))
        activity: list[wire.Sample] = []
        hr: list[wire.Sample] = []
        start, end = self.local_ns(day, 0), self.local_ns(day + dt.timedelta(days=1), 0)
        for t in range(start, end, 60 * NS):
            worn = not (self.strap_off(d) and off[0] <= t < off[1])
            asleep = any(a <= t < b for a, b in nights)
            if not worn:
                counts = 0
            elif asleep:
                counts = int(rng.integers(1, 7))
            elif ex_start <= t < ex_end:
                counts = int(rng.integers(2500, 4001))
            else:
                counts = int(rng.integers(150, 901))
            steps = 0 if asleep or not worn else counts // 8
            activity.append(wire.ActivitySample(t, None, None, steps, counts))
            if worn and not rr_start <= t < rr_end:
                base = 55.0 if asleep else (110.0 if ex_start <= t < ex_end else 72.0)
                bpm = round(base + elevated + 3 * p + rng.normal(0, 2))
                for k in range(0, 60, self.hr_period_s):
                    hr.append(wire.HrSample(t + k * NS, bpm, True, None, ()))
        hr.extend(self._beats(rng, rr_start, rr_end, 1000.0 + 20 * p))
        hr.sort(key=lambda s: s.ts_ns)
        battery = max(5, 100 - 9 * (d % 10))
        status: list[wire.Sample] = [
            wire.StatusSample(self.local_ns(day, 12 * 60), "battery", battery, -60, "")
        ]
        return [("hr", hr), ("activity", activity), ("status", status)]

    def _beats(
        self, rng: np.random.Generator, start: int, end: int, mean_rr: float
    ) -> list[wire.Sample]:
        out: list[wire.Sample] = []
        t = start
        n = 0
        while True:
            rr = mean_rr + 40.0 * np.sin(2 * np.pi * 0.25 * (t - start) / NS) + rng.normal(0, 12)
            if n == 150:
                rr *= 2  # a missed beat: the artefact handling must catch it
            rr = round(float(rr), 3)
            t += round(rr * 1_000_000)
            if t >= end:
                return out
            out.append(wire.HrSample(t, round(60_000 / rr), True, None, (rr,)))
            n += 1

    def raw_lines(self) -> Iterator[str]:
        """Line protocol of every raw point, through the service's schema code."""
        for message in self.messages():
            yield from schema.message_lines(message)

    def alert_lines(self) -> list[str]:
        """``low_wear`` alert events on strap-off days (the rules engine's schema):
        firing at 15:00, resolved at 16:00 once the strap is worn again."""
        out = []
        events = (
            (15 * 60, "firing", "strap off for 2 h during the day", 120.0),
            (16 * 60, "resolved", "worn again", 0.0),
        )
        for p, participant in enumerate(self.participants):
            for d in range(self.days):
                if not (self.present(p, d) and self.strap_off(d)):
                    continue
                for minutes, state, message, value in events:
                    text = schema.line(
                        "alert",
                        {
                            "study": self.study,
                            "participant": participant,
                            "rule": "low_wear",
                            "severity": "warning",
                        },
                        {"state": state, "message": message, "value": value},
                        self.local_ns(self.day(d), minutes),
                    )
                    assert text is not None
                    out.append(text)
        return out

    # -- self-reports -----------------------------------------------------------------

    def self_report_rows(self) -> list[tuple[str, str, str, str, float]]:
        """(participant, time, instrument, item, value) rows, as a CSV import has them."""
        rows: list[tuple[str, str, str, str, float]] = []
        for p, participant in enumerate(self.participants):
            bias = SLEEP_BIAS_H[p % len(SLEEP_BIAS_H)]
            for d in range(self.days):
                if not self.present(p, d):
                    continue
                rng = np.random.default_rng([self.seed, p, d, 2])
                day = self.day(d)
                if d > 0 and self.present(p, d - 1):
                    onset, offset = self.sleep_truth(p, d - 1)
                    hours = (offset - onset) / NS / 3600 + bias + rng.normal(0, 0.2)
                    when = self._iso(self.local_ns(day, 8 * 60 + 30))
                    rows.append((participant, when, "sleep_diary", "sleep_hours", round(hours, 2)))
                evening = self._iso(self.local_ns(day, 21 * 60))
                active = self.exercise_truth(p, d) * ACTIVITY_FACTOR + rng.normal(0, 3)
                rows.append((participant, evening, "activity_ema", "active_min", round(active, 1)))
                rows.append((participant, evening, "mood", "mood", float(rng.integers(4, 9))))
                if d % 7 == 0:
                    when = self._iso(self.local_ns(day, 10 * 60))
                    for q in range(1, 10):
                        rows.append((participant, when, "phq9", f"q{q}", float(rng.integers(0, 3))))
        return rows

    def self_report_csv(self) -> str:
        lines = ["participant,time,instrument,item,value"]
        lines += [",".join(map(str, row)) for row in self.self_report_rows()]
        return "\n".join(lines) + "\n"

    def _iso(self, t_ns: int) -> str:
        return dt.datetime.fromtimestamp(t_ns // NS, self.tz).isoformat()


def main(argv: list[str] | None = None) -> int:
    """``python -m processing.research.synthetic``: write the synthetic study (raw data,
    features, alerts, self-reports) into the bucket of ``$WELLSENSE_INFLUX_*``, for trying
    the researcher tools out. Never run it against a real study's bucket."""
    import argparse
    import sys

    from processing.writer import InfluxWriter

    from . import recompute, selfreport
    from .settings import add_connection_args, connection_from_args
    from .store import Store

    p = argparse.ArgumentParser(prog="python -m processing.research.synthetic")
    add_connection_args(p)
    p.add_argument("--days", type=int, default=10)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.study is None:
        args.study = "demo"
    args.timezone = args.timezone or "Europe/Oslo"
    conn = connection_from_args(args)
    synth = SyntheticStudy(study=conn.study, days=args.days, timezone=conn.timezone)
    writer = InfluxWriter(url=conn.url, org=conn.org, bucket=conn.bucket, token=conn.token)
    lines = [*synth.raw_lines(), *synth.alert_lines()]
    for k in range(0, len(lines), 10_000):
        writer.write(lines[k : k + 10_000])
    with Store(conn) as store:
        hr, rr, act = (store.frame(m) for m in ("hr", "rr", "activity"))
    writer.write(recompute.feature_lines("hrv_window", recompute.hrv_window_frame(rr), conn.study))
    daily = recompute.daily_frame(hr, rr, act, timezone=conn.timezone)
    writer.write(recompute.feature_lines("daily", daily, conn.study))
    writer.write(
        selfreport.to_lines(selfreport.parse_csv(synth.self_report_csv(), tz=conn.tz), conn.study)
    )
    writer.close()
    first, last = synth.start, synth.day(synth.days - 1)
    print(f"study {conn.study}: {', '.join(synth.participants)}, {first} to {last}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
