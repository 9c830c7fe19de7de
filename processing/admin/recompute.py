"""``wellsense recompute --config FILE --since DATE [--until DATE]``: rebuild stored features.

After a feature definition changes (docs/migrations.md) the stored
``hrv_window`` and ``daily`` points are recomputed from the raw points, with
the processing service's own unit code (:class:`processing.featurejobs.FeatureJobs`),
for the local days ``since`` .. ``until`` (inclusive, in ``[features] timezone``):

1. every HRV window holding stored RR is computed and written (as the
   service does; gateway-computed windows are left alone);
2. every day with HR or step samples, oldest first per participant: its
   ``daily`` point is **deleted**, then computed from what is stored and
   written. Deleting first removes fields that no longer exist (renamed or
   replaced, which a rewrite would keep); going oldest first lets each day's
   baseline read the recomputed days before it.

Run it with the service stopped or running (a unit computed twice gives the
same point). Exit codes: 0 done, 1 InfluxDB error, 2 usage or configuration
error, 4 InfluxDB refused the token.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from wellsense_cli import conventions
from wellsense_cli.conventions import EXIT_FAILURE, EXIT_USAGE, exit_code_for

log = logging.getLogger("wellsense.recompute")

EXIT_INFLUX = EXIT_FAILURE
NS = 1_000_000_000


@dataclass(slots=True)
class Recomputed:
    windows: int = 0
    days: int = 0
    participants: int = 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def recompute(
    config: Any,
    client: Any,
    writer: Any,
    since: dt.date,
    until: dt.date,
    *,
    progress: bool = False,
) -> Recomputed:
    """Recompute the windows and days of ``since`` .. ``until``; see the module docstring.

    ``progress``: a bar over the units (windows and days) on stderr, with rate and ETA.
    """
    from processing.featurejobs import FeatureJobs, rfc3339, stale_fields_possible
    from processing.windows import DayCalendar, Unit

    influx, fc = config.influx, config.features
    tz = ZoneInfo(fc.timezone)
    calendar = DayCalendar(fc.timezone)
    jobs = FeatureJobs(
        query_api=client.query_api(),
        org=influx.org,
        bucket=influx.bucket,
        study=config.study,
        window_s=fc.hrv_window_s,
        timezone=fc.timezone,
    )
    start_ns = int(dt.datetime.combine(since, dt.time(), tz).timestamp()) * NS
    stop_ns = int(dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tz).timestamp())
    stop_ns *= NS

    def delete(unit: Unit, measurement: str) -> None:
        client.delete_api().delete(
            start=rfc3339(unit.start_ns),
            stop=rfc3339(unit.start_ns + 1),
            predicate=(
                f'_measurement="{measurement}" AND study="{config.study}"'
                f' AND participant="{unit.participant}"'
            ),
            bucket=influx.bucket,
            org=influx.org,
        )

    done = Recomputed()
    work = sorted(jobs.recent(start_ns, stop_ns).items())
    units = sum(len(set(w)) + len({calendar.day_of(h) for h in hs}) for _, (w, hs) in work)
    bar = conventions.progress(units, desc="recompute", enabled=progress, unit="unit")
    for participant, (windows, hours) in work:
        done.participants += 1
        bar.set_postfix_str(participant, refresh=False)
        for t in sorted(set(windows)):
            unit = Unit("hrv", participant, t, t + fc.hrv_window_s * NS)
            result = jobs.compute(unit)
            if result.lines and stale_fields_possible(unit, result.lines[0]):
                delete(unit, "hrv_window")
            writer.write(result.lines)
            done.windows += 1
            bar.update()
        for day_start, day_end in sorted({calendar.day_of(h) for h in hours}):
            unit = Unit("daily", participant, day_start, day_end)
            delete(unit, "daily")
            writer.write(jobs.compute(unit).lines)
            done.days += 1
            bar.update()
    bar.close()
    return done


def main(argv: list[str], prog: str = "wellsense recompute") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Recompute the stored hrv_window and daily features of a range of local "
        "days from the raw data (after a feature definition change; docs/migrations.md).",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="the processing service's TOML file")  # fmt: skip
    parser.add_argument("--since", type=_date, required=True, metavar="DATE",
                        help="first local day (YYYY-MM-DD)")  # fmt: skip
    parser.add_argument("--until", type=_date, metavar="DATE",
                        help="last local day (default: today)")  # fmt: skip
    conventions.add_progress_args(parser)
    args = parser.parse_args(argv)

    from processing.config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    until = args.until or dt.datetime.now(ZoneInfo(config.features.timezone)).date()
    if until < args.since:
        print(f"{prog}: --until {until} is before --since {args.since}", file=sys.stderr)
        return EXIT_USAGE

    from influxdb_client import InfluxDBClient

    from processing.writer import InfluxWriter

    influx = config.influx
    writer = InfluxWriter.for_config(influx)
    try:
        with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org,
                            timeout=int(influx.timeout_s * 1000)) as client:  # fmt: skip
            done = recompute(
                config, client, writer, args.since, until,
                progress=conventions.progress_wanted(args),
            )  # fmt: skip
    except Exception as exc:  # InfluxDB unreachable or refusing: say so, no traceback
        print(f"{prog}: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return EXIT_INFLUX if isinstance(exc, ValueError) else exit_code_for(exc)
    finally:
        writer.close()
    print(
        f"{done.participants} participants: {done.windows} windows and {done.days} days "
        f"recomputed ({args.since} .. {until}, {config.features.timezone})"
    )
    return 0
