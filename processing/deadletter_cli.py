"""``wellsense deadletter``: look into and replay the durable dead letters.

    wellsense deadletter list --config processing.toml [--reason bad_value] [--participant P]
                              [--gateway G] [--since 2026-11-01] [--until ...]
                              [--replayed yes|no] [--limit N] [--format table|json|csv]
    wellsense deadletter show ID --config processing.toml [--format table|json]
    wellsense deadletter replay ID [ID ...] --config processing.toml

The store is the SQLite file of the worker's ``[deadletter] path``
(:mod:`processing.deadletterstore`). ``replay`` runs a dead letter through
processing's own path again (lenient decoding, the storage schema, the
InfluxDB writer with the worker's token), for use after a fix (a corrected
bound, a repaired bucket). It is idempotent: every point has the exact time
and tags of the data, so replaying twice stores the same points once. What is
still invalid stays a dead letter; the row records when it was replayed and
with what result.

Exit codes: 0 done; 1 a dead letter was not found or is still invalid;
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from processing.deadletterstore import DeadLetter, DeadLetterStore
from wellsense_cli.conventions import add_format

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_LIST_FIELDS = (
    "id",
    "received",
    "kind",
    "reason",
    "field",
    "participant",
    "gateway",
    "device",
    "seq",
    "payload_bytes",
    "replayed",
    "replay_result",
)


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")


def _time_ns(text: str) -> int:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1e9)


def _row(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id,
        "received": _iso(d.received_ns),
        "kind": d.kind,
        "reason": d.reason,
        "field": d.field,
        "participant": d.participant,
        "gateway": d.gateway,
        "device": d.device,
        "seq": d.seq,
        "payload_bytes": d.payload_bytes,
        "replayed": _iso(d.replayed_ns),
        "replay_result": d.replay_result,
    }


def _full(d: DeadLetter) -> dict[str, Any]:
    out = _row(d) | {"error": d.error, "topic": d.topic, "worker": d.worker, "epoch": d.epoch}
    payload = d.payload or b""
    try:
        out["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        out["payload_b64"] = base64.b64encode(payload).decode("ascii")
    return out


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="List, show and replay the durable dead letters of processing."
    )
    sub = parser.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, required=True, metavar="FILE", help="processing.toml")

    lister = sub.add_parser("list", help="dead letters matching the filters, oldest first")
    common(lister)
    lister.add_argument("--reason", help="e.g. bad_value, bad_json, influx_rejected")
    lister.add_argument("--participant", help="only this participant pseudonym")
    lister.add_argument("--gateway", help="only this gateway id")
    lister.add_argument("--since", type=_time_ns, help="received at or after (ISO 8601, UTC)")
    lister.add_argument("--until", type=_time_ns, help="received before (ISO 8601, UTC)")
    lister.add_argument("--replayed", choices=("yes", "no"), help="only replayed (yes) or not (no)")
    lister.add_argument("--limit", type=int, default=1000, help="at most N rows (default: 1000)")
    add_format(lister, ("table", "json", "csv"), "table")
    shower = sub.add_parser("show", help="one dead letter in full, with its whole payload")
    common(shower)
    shower.add_argument("id", type=int, help="the dead letter's id (from list)")
    add_format(shower, ("table", "json"), "table")
    replayer = sub.add_parser("replay", help="store dead letters again through processing's path")
    common(replayer)
    replayer.add_argument("ids", type=int, nargs="+", metavar="ID", help="dead letters to replay")
    return parser


def main(argv: list[str], prog: str = "wellsense deadletter") -> int:
    args = _parser(prog).parse_args(argv)
    from processing.config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    path = config.deadletter.path
    if not path.exists():
        print(
            f"{prog}: no dead-letter store at {path} (nothing was dead-lettered)", file=sys.stderr
        )
        return EXIT_FAILED if args.action != "list" else EXIT_OK
    with DeadLetterStore(
        path, max_rows=config.deadletter.max_rows, max_bytes=config.deadletter.max_bytes
    ) as store:
        if args.action == "list":
            return _list(store, args)
        if args.action == "show":
            return _show(store, args, prog)
        return _replay(store, config, args.ids, prog)


def _list(store: DeadLetterStore, args: argparse.Namespace) -> int:
    letters = store.list(
        reason=args.reason,
        participant=args.participant,
        gateway=args.gateway,
        since_ns=args.since,
        until_ns=args.until,
        replayed=None if args.replayed is None else args.replayed == "yes",
        limit=args.limit,
    )
    rows = [_row(d) for d in letters]
    if args.format == "json":
        for row in rows:
            print(json.dumps(row))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=_LIST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(f"{'id':>6}  {'received':<29} {'kind':<8} {'reason':<16} participant/device  seq")
        for d in letters:
            who = f"{d.participant or '-'}/{d.device or '-'}"
            seq = "-" if d.seq is None else str(d.seq)
            mark = "  (replayed)" if d.replayed_ns is not None else ""
            print(
                f"{d.id:>6}  {_iso(d.received_ns):<29} {d.kind:<8} {d.reason:<16} {who}  {seq}"
                f"{mark}"
            )
        print(f"{len(letters)} dead letters; {store.evicted} evicted by the store's bound")
    return EXIT_OK


def _show(store: DeadLetterStore, args: argparse.Namespace, prog: str) -> int:
    letter = store.get(args.id)
    if letter is None:
        print(f"{prog}: no dead letter {args.id}", file=sys.stderr)
        return EXIT_FAILED
    full = _full(letter)
    if args.format == "json":
        print(json.dumps(full, separators=(",", ":")))
        return EXIT_OK
    for key, value in full.items():
        if key not in ("payload", "payload_b64"):
            print(f"{key}: {value}")
    print("payload (base64):" if "payload_b64" in full else "payload:")
    print(full.get("payload", full.get("payload_b64")))
    return EXIT_OK


def _replay(store: DeadLetterStore, config: Any, ids: list[int], prog: str) -> int:
    from collector import wire
    from processing import schema
    from processing.writer import InfluxWriter, WriteError

    writer = InfluxWriter.for_config(config.influx, stop=threading.Event())
    code = EXIT_OK
    try:
        for row_id in ids:
            letter = store.get(row_id)
            if letter is None or letter.payload is None:
                print(f"{prog}: no dead letter {row_id}", file=sys.stderr)
                code = EXIT_FAILED
                continue
            try:
                message, dropped = wire.decode_lenient(letter.payload, topic=letter.topic)
            except wire.WireError as exc:
                result = f"still invalid: {exc}"
                code = EXIT_FAILED
            else:
                try:
                    writer.write(schema.message_lines(message))
                except WriteError as exc:
                    result = f"InfluxDB refused it: {exc}"
                    code = EXIT_FAILED
                else:
                    result = f"stored {len(message.samples)} samples"
                    if dropped:
                        result += f"; {len(dropped)} still invalid ({dropped[0].error})"
            store.mark_replayed(row_id, time.time_ns(), result)
            print(f"{row_id}: {result}")
    finally:
        writer.close()
    return code
