"""`wellsense participant`: list, withdraw (stop collection) or erase a participant.

    wellsense participant list  --config admin.toml
    wellsense participant withdraw p-3f9c2a7e --config admin.toml
    wellsense participant erase p-3f9c2a7e --config admin.toml [--receipt-json FILE]

    wellsense participant erase p-3f9c2a7e --config admin.toml --dry-run

Erasure, in this order, so that nothing of the participant's can flow back:

0. the participant's hashed pseudonym is added to the tombstone file
   (processing/tombstones.py): from now on processing discards (and
   confirms to the gateway) any message of theirs still queued at the
   broker or in flight, and the rules forget their alert state;
1. the broker ACL stops letting the gateway publish for the participant
   (and the broker is reloaded);
2. the gateway gets its retained withdrawal command (collector/commands.py):
   it sets a persistent withdrawal flag, stops the participant's sensors and
   deletes their messages and journaled samples from its outbox (and raw
   store), overwriting them (secure delete, WAL truncated, VACUUM), then
   acknowledges with the counts; an offline gateway does so when it reconnects;
3. retained broker messages under the participant's topics (and their
   alert state) are cleared;
4. their rows in the alert delivery queue are deleted (and overwritten);
5. every point with the participant's tag is deleted from every bucket
   (raw and downsampled) over InfluxDB's whole time range (future-dated
   points included), counted before and after per measurement, and
   deleted again if late writes arrived meanwhile;
6. the exports registry is searched: exports that hold the participant are
   listed in the receipt for staff to delete (files outside WellSense).

A receipt lists each store, what was removed and the counts. ``--dry-run``
changes nothing and reports what would be removed (the gateway's counts are
known only when it applies the erasure).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from collector import wire
from collector.commands import Command, Withdrawal, encode_command
from processing import tombstones
from processing.admin import broker
from processing.admin.enroll import reload_broker
from processing.admin.influxapi import InfluxApi, InfluxApiError
from processing.admin.mqttadmin import AdminSession, MqttAdminError
from processing.admin.registry import Registry, now_iso
from processing.admin.settings import AdminConfig
from processing.research.exports_registry import exports_of
from wellsense_cli.conventions import exit_code_for

# InfluxDB's whole time range (its timestamps are int64 ns since 1970):
# erasure must also reach pre-1970 and future-dated points (a wrong clock).
ALL_TIME = ("1677-09-21T00:12:43.145224194Z", "2262-04-11T23:47:16.854775806Z")


@dataclass
class Receipt:
    participant: str
    study: str
    gateway: str
    action: str
    started: str
    finished: str = ""
    influx: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    retained_cleared: list[str] = field(default_factory=list)
    gateway_ack: dict[str, Any] | None = None
    acl_revoked: bool = False
    dry_run: bool = False
    tombstoned: bool = False
    notify_rows: int = 0
    deadletters: int | None = None  # None: no dead-letter store on this host
    exports: list[dict[str, Any]] = field(default_factory=list)
    #: Every store and what was removed from it (or would be, with --dry-run).
    stores: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        lines = [
            f"WellSense {self.action} receipt",
            f"participant {self.participant}  study {self.study}  gateway {self.gateway}",
            f"started {self.started}  finished {self.finished}",
            f"broker: gateway {self.gateway} may no longer publish for {self.participant}"
            if self.acl_revoked
            else "broker: access unchanged",
        ]
        if self.dry_run:
            lines[0] += " (dry run: nothing was changed; counts are what would be removed)"
            lines.append("gateway: counts known only when it applies the erasure")
        elif self.gateway_ack is None:
            lines.append(
                "gateway: acknowledgement pending (offline?). It stops collecting and "
                "erases its outbox as soon as it reconnects; re-run to confirm."
            )
        else:
            purged = self.gateway_ack.get("purged", {}).get(self.participant)
            outbox = "" if purged is None else f", {purged} outbox messages erased"
            lines.append(f"gateway: collection stopped (withdrawal flag set){outbox}")
        if self.action == "erasure":
            for store, what in self.stores.items():
                lines.append(f"{store}: {what}")
            cleared = "to clear" if self.dry_run else "cleared"
            lines.append(f"broker retained messages {cleared}: {len(self.retained_cleared)}")
            for bucket, counts in self.influx.items():
                lines.append(f"InfluxDB bucket {bucket}:  measurement  points before -> after")
                if not counts:
                    lines.append("    (no data for this participant)")
                for m, c in sorted(counts.items()):
                    lines.append(f"    {m:<16} {c['before']:>10} -> {c['after']}")
            for e in self.exports:
                lines.append(
                    f"export {e.get('ts')} by {e.get('user')}@{e.get('host')}: delete "
                    + " ".join(str(f) for f in e.get("files") or [])
                )
        return "\n".join(lines)


def count_points(api: InfluxApi, org: str, bucket: str, participant: str) -> dict[str, int]:
    """Field values per measurement carrying ``participant`` (0 means no point remains)."""
    flux = (
        f'from(bucket: "{bucket}") |> range(start: {ALL_TIME[0]}, stop: {ALL_TIME[1]}) '
        f'|> filter(fn: (r) => r.participant == "{participant}") '
        '|> count() |> group(columns: ["_measurement"]) |> sum()'
    )
    return {r["_measurement"]: int(r["_value"]) for r in api.query(org, flux) if r.get("_value")}


def erase_influx(
    config: AdminConfig,
    participant: str,
    *,
    settle_s: float = 2.0,
    dry_run: bool = False,
) -> dict[str, dict[str, dict[str, int]]]:
    s = config.influx
    if not s.token:
        where = (
            f"{s.token_file} does not exist yet: run wellsense influx-setup"
            if s.token_file is not None
            else "set [influx] token_file in admin.toml"
        )
        raise InfluxApiError(0, f"no InfluxDB erasure token: {where}")
    api = InfluxApi(s.url, s.token)
    result: dict[str, dict[str, dict[str, int]]] = {}
    for bucket in s.buckets:
        before = count_points(api, s.org, bucket, participant)
        if dry_run:
            result[bucket] = {m: {"before": n, "after": n} for m, n in before.items()}
            continue
        after = before
        for _attempt in range(3):  # late writes (processing catching up) are deleted too
            api.delete_points(s.org, bucket, *ALL_TIME, f'participant="{participant}"')
            after = count_points(api, s.org, bucket, participant)
            if not after:
                break
            time.sleep(settle_s)
        result[bucket] = {m: {"before": n, "after": after.get(m, 0)} for m, n in before.items()}
        for m, n in after.items():
            result[bucket].setdefault(m, {"before": n, "after": n})
    return result


def gateway_command(registry: Registry, study: str, gateway: str) -> Command:
    """The gateway's full withdrawal list: the retained command replaces the previous one."""
    withdraw = tuple(
        Withdrawal(p, registry.participants[p].status == "erased")
        for p in registry.of_gateway(gateway, "withdrawn", "erased")
    )
    return Command(f"c-{secrets.token_hex(6)}", study, gateway, time.time_ns(), withdraw)


def erase_notify_queue(config: AdminConfig, participant: str, *, dry_run: bool) -> int | None:
    """Rows of the alert delivery queue about ``participant``; None without a queue here."""
    path = config.erasure.notify_database
    if not path.exists():
        return None
    from processing.notify.outbox import Outbox as NotifyQueue

    queue = NotifyQueue(path)
    try:
        return queue.erase_participant(config.study.id, participant, dry_run=dry_run)
    finally:
        queue.close()


def erase_deadletters(config: AdminConfig, participant: str, *, dry_run: bool) -> int | None:
    """Dead letters of ``participant`` in processing's store; None without a store here."""
    path = config.erasure.deadletter_database
    if not path.exists():
        return None
    from processing.deadletterstore import DeadLetterStore

    store = DeadLetterStore(path)
    try:
        if dry_run:
            return store.count_participant(participant)
        return store.delete_participant(participant)
    finally:
        store.close()


def withdraw(
    config: AdminConfig,
    participant: str,
    *,
    erase: bool,
    ack_timeout_s: float,
    reload_command: str | None,
    dry_run: bool = False,
) -> Receipt:
    study = config.study.id
    registry = Registry(config.registry, study)
    if participant not in registry.participants:
        raise KeyError(f"{participant} is not enrolled in study {study}")
    entry = registry.participants[participant]
    gateway = entry.gateway
    receipt = Receipt(participant, study, gateway, "erasure" if erase else "withdrawal", now_iso())
    receipt.dry_run = dry_run
    if dry_run:
        return _dry_run(config, receipt)
    if erase:
        # First: whatever of theirs is still queued or in flight is discarded.
        receipt.tombstoned = True
        tombstones.add(config.erasure.tombstones_file, study, participant)
    registry.set_status(participant, "erased" if erase or entry.status == "erased" else "withdrawn")
    registry.save()
    broker.set_gateway_acl(
        config.broker.acl_file, study, gateway, registry.of_gateway(gateway, "active")
    )
    if reload_command:
        problem = reload_broker(reload_command)
        if problem:
            raise MqttAdminError(f"broker not reloaded: {problem}")
    receipt.acl_revoked = True
    command = gateway_command(registry, study, gateway)
    with AdminSession(config.admin_mqtt()) as session:
        state = wire.gateway_topic(study, gateway, "state")
        session.client.subscribe(state, qos=1)
        session.publish(
            wire.gateway_topic(study, gateway, "cmd"), encode_command(command), retain=True
        )
        receipt.gateway_ack = session.wait_for_ack(state, command.id, ack_timeout_s)
        if erase:
            found = session.retained(_retained_filters(study, participant))
            for topic in sorted(found):
                session.publish(topic, b"", retain=True)  # an empty retained message clears it
            receipt.retained_cleared = sorted(found)
    if erase:
        receipt.notify_rows = erase_notify_queue(config, participant, dry_run=False) or 0
        receipt.deadletters = erase_deadletters(config, participant, dry_run=False)
        receipt.influx = erase_influx(config, participant)
        receipt.exports = exports_of(config.erasure.exports_registry, study, participant)
        receipt.stores = _stores(config, receipt)
    receipt.finished = now_iso()
    return receipt


def _retained_filters(study: str, participant: str) -> list[str]:
    root = f"{wire.TOPIC_ROOT}/{study}"
    return [f"{root}/{participant}/#", f"{root}/_alerts/{participant}/#"]


def _dry_run(config: AdminConfig, receipt: Receipt) -> Receipt:
    """What an erasure would remove, changing nothing (no ACL, command or delete)."""
    study, participant = receipt.study, receipt.participant
    if receipt.action == "erasure":
        with AdminSession(config.admin_mqtt()) as session:
            receipt.retained_cleared = sorted(
                session.retained(_retained_filters(study, participant))
            )
        receipt.notify_rows = erase_notify_queue(config, participant, dry_run=True) or 0
        receipt.deadletters = erase_deadletters(config, participant, dry_run=True)
        receipt.influx = erase_influx(config, participant, dry_run=True)
        receipt.exports = exports_of(config.erasure.exports_registry, study, participant)
        receipt.stores = _stores(config, receipt)
    receipt.finished = now_iso()
    return receipt


def _stores(config: AdminConfig, receipt: Receipt) -> dict[str, Any]:
    """One line per store: what was (or would be) removed."""
    ack = receipt.gateway_ack or {}
    p = receipt.participant
    verb = "would remove" if receipt.dry_run else "removed"
    out: dict[str, Any] = {
        "tombstone": (
            "would be added" if receipt.dry_run else "added: processing discards their messages"
        ),
    }
    if receipt.dry_run or not ack:
        out["gateway outbox"] = "counts reported by the gateway when it applies the erasure"
    else:
        scrubbed = ack.get("scrubbed", {}).get(p)
        out["gateway outbox"] = (
            f"{verb} {ack.get('purged', {}).get(p, 0)} messages, "
            f"{ack.get('journal_purged', {}).get(p, 0)} journaled samples"
            + ("" if scrubbed is None else f"; file and WAL overwritten: {bool(scrubbed)}")
        )
        if "raw_purged" in ack:
            out["gateway raw store"] = f"{verb} {ack['raw_purged'].get(p, 0)} rows"
    out["broker retained"] = f"{verb} {len(receipt.retained_cleared)} messages"
    out["alert delivery queue"] = (
        f"{verb} {receipt.notify_rows} rows"
        if config.erasure.notify_database.exists()
        else f"none at {config.erasure.notify_database}"
    )
    for bucket, counts in receipt.influx.items():
        out[f"InfluxDB {bucket}"] = f"{verb} {sum(c['before'] for c in counts.values())} values"
    out["dead letters"] = (
        f"{verb} {receipt.deadletters} dead letters (file overwritten)"
        if receipt.deadletters is not None
        else f"none at {config.erasure.deadletter_database}"
    )
    out["exports"] = (
        f"{len(receipt.exports)} export(s) hold the participant: delete the files listed"
        if receipt.exports
        else f"none recorded in {config.erasure.exports_registry}"
    )
    return out


def main(argv: list[str], prog: str = "wellsense participant") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="List, withdraw or erase participants "
        "(enrol one with 'wellsense participant enroll').",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    lister = sub.add_parser("list", help="pseudonyms, gateways and status")
    lister.add_argument("--config", type=Path, required=True, help="admin.toml")
    for name, text in (
        ("withdraw", "stop collection now; keep the data"),
        ("erase", "stop collection and delete the participant's data everywhere"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("participant", help="pseudonym")
        p.add_argument("--config", type=Path, required=True, help="admin.toml")
        p.add_argument(
            "--ack-timeout",
            type=float,
            default=30.0,
            help="seconds to wait for the gateway's acknowledgement",
        )
        p.add_argument(
            "--reload-command",
            default="systemctl reload mosquitto",
            help="how to reload the broker after the ACL change (default: %(default)s)",
        )
        p.add_argument("--receipt-json", type=Path, help="also write the receipt as JSON")
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="change nothing; report what would be removed",
        )
    args = parser.parse_args(argv)
    from collector.tomlconfig import ConfigError
    from processing.admin import settings

    try:
        config = settings.load(args.config)
        if args.action == "list":
            registry = Registry(config.registry, config.study.id)
            for who, e in sorted(registry.participants.items()):
                print(
                    f"{who}  {e.gateway}  {e.status:<9}  enrolled {e.enrolled}  changed {e.changed}"
                )
            return 0
        receipt = withdraw(
            config,
            args.participant,
            erase=args.action == "erase",
            ack_timeout_s=args.ack_timeout,
            reload_command=args.reload_command,
            dry_run=args.dry_run,
        )
    except (ConfigError, KeyError, InfluxApiError, MqttAdminError, OSError, ValueError) as exc:
        print(f"{prog}: {str(exc).strip(chr(39))}", file=sys.stderr)
        return exit_code_for(exc)
    print(receipt.text())
    if args.receipt_json:
        args.receipt_json.write_text(json.dumps(asdict(receipt), indent=1) + "\n")
    if receipt.dry_run:
        return 0
    remaining = sum(c["after"] for b in receipt.influx.values() for c in b.values())
    return 0 if remaining == 0 else 1
