"""Gateway commands: withdrawal and erasure, received on ``_gateways/<gw>/cmd``.

The command topic holds one **retained** message that states the gateway's
withdrawal list (not a one-off action), so a gateway that was offline gets
it on its next connection, and two erasures in a row cannot overwrite each
other::

    {"schema": "wellsense.cmd.v1", "id": "c-1f2e...", "issued_ns": 1700000000000000000,
     "study": "pilot", "gateway": "gw-0001",
     "withdraw": [{"participant": "p-7f3a9c", "erase": true}]}

On a new entry the gateway, in this order:

1. records a **persistent withdrawal flag** in ``<data_dir>/withdrawn.json``
   (written atomically and fsynced), which keeps the participant's sensors
   off across restarts;
2. stops collecting from that participant's sensors at once and drops their
   open batches (the service's ``on_withdraw`` callback);
3. if ``erase`` is set, deletes the participant's messages and journaled
   samples from the outbox and, in data minimisation mode, their raw data
   from the local raw store, with ``secure_delete`` on, then truncates the
   WAL and vacuums each file so no deleted byte stays on disk;
4. acknowledges on its retained ``state`` topic:
   ``"ack": {"id": ..., "withdrawn": [...], "purged": {participant: n},
   "journal_purged": {participant: samples}, "scrubbed": {participant: 1}}``
   (plus ``"raw_purged": {participant: rows}`` in data minimisation mode).

Applying the same command again changes nothing, so it is safe to repeat.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from collector import safejson, wire
from collector.outbox import Outbox
from collector.rawstore import RawStore

log = logging.getLogger(__name__)

CMD_SCHEMA: Final = "wellsense.cmd.v1"
MAX_COMMAND_BYTES: Final = 64 * 1024
FLAG_FILE: Final = "withdrawn.json"


class CommandError(ValueError):
    """A command payload that is not a valid command for this gateway."""


@dataclass(frozen=True, slots=True)
class Withdrawal:
    participant: str
    erase: bool


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    study: str
    gateway: str
    issued_ns: int
    withdraw: tuple[Withdrawal, ...]


def encode_command(command: Command) -> bytes:
    body = {
        "schema": CMD_SCHEMA,
        "id": command.id,
        "issued_ns": command.issued_ns,
        "study": command.study,
        "gateway": command.gateway,
        "withdraw": [{"participant": w.participant, "erase": w.erase} for w in command.withdraw],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode_command(payload: bytes, *, study: str, gateway: str) -> Command:
    """Validate ``payload`` as a command addressed to this study and gateway."""
    try:
        body = safejson.loads(payload, max_bytes=MAX_COMMAND_BYTES)
    except safejson.UnsafeJsonError as exc:
        raise CommandError(f"command is not acceptable JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("schema") != CMD_SCHEMA:
        raise CommandError(f"not a {CMD_SCHEMA} command")
    if body.get("study") != study or body.get("gateway") != gateway:
        raise CommandError("command is addressed to another study or gateway")
    entries = body.get("withdraw")
    issued = body.get("issued_ns")
    if not isinstance(entries, list) or not isinstance(issued, int) or isinstance(issued, bool):
        raise CommandError("command needs a 'withdraw' list and an integer 'issued_ns'")
    command_id = body.get("id")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= 64:
        raise CommandError("command needs an 'id'")
    withdraw = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("erase"), bool):
            raise CommandError("each withdrawal needs 'participant' and 'erase' (true/false)")
        try:
            participant = wire.check_id(entry.get("participant"), "participant")  # type: ignore[arg-type]
        except wire.WireError as exc:
            raise CommandError(str(exc)) from None
        withdraw.append(Withdrawal(participant, entry["erase"]))
    return Command(command_id, study, gateway, issued, tuple(withdraw))


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """One withdrawn participant, as stored in ``withdrawn.json``."""

    erase: bool
    since_ns: int
    command: str


class WithdrawalStore:
    """The persistent withdrawal flags in ``<data_dir>/withdrawn.json``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FLAG_FILE

    def load(self) -> dict[str, FlagRecord]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Unreadable flags must not silently restart collection: fail loudly.
            raise CommandError(f"{self.path} is unreadable ({exc}); fix or restore it") from None
        return {
            p: FlagRecord(bool(r["erase"]), int(r["since_ns"]), str(r["command"]))
            for p, r in raw.get("participants", {}).items()
        }

    def withdrawn(self) -> frozenset[str]:
        return frozenset(self.load())

    def save(self, flags: dict[str, FlagRecord]) -> None:
        """Write atomically and durably: the flag must survive a power cut."""
        body = {
            "participants": {
                p: {"erase": r.erase, "since_ns": r.since_ns, "command": r.command}
                for p, r in sorted(flags.items())
            }
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FLAG_FILE}.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(body, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def participant_prefixes(study: str, participants: Iterable[str]) -> tuple[str, ...]:
    """Outbox topic prefixes of these participants' streams."""
    return tuple(f"{wire.TOPIC_ROOT}/{study}/{p}/" for p in sorted(participants))


class CommandHandler:
    """Applies commands; hand it to the publisher as its ``command_handler``.

    Args:
        study, gateway: whose commands to accept.
        store: the persistent withdrawal flags.
        outbox: purged of erased participants' messages.
        on_withdraw: stops collection for these participants; returns once done.
        acknowledge: publishes the ack (the publisher's retained state extra).
        clock_ns: wall clock for the flags.
        raw_store: the local raw store (data minimisation mode), purged too.
    """

    def __init__(
        self,
        *,
        study: str,
        gateway: str,
        store: WithdrawalStore,
        outbox: Outbox,
        on_withdraw: Callable[[frozenset[str]], None],
        acknowledge: Callable[[dict[str, Any]], None],
        clock_ns: Callable[[], int] = time.time_ns,
        raw_store: RawStore | None = None,
    ) -> None:
        self.study = study
        self.gateway = gateway
        self.store = store
        self.outbox = outbox
        self.on_withdraw = on_withdraw
        self.acknowledge = acknowledge
        self.clock_ns = clock_ns
        self.raw_store = raw_store

    def __call__(self, payload: bytes) -> None:
        if not payload:
            return  # the retained command was cleared
        try:
            command = decode_command(payload, study=self.study, gateway=self.gateway)
        except CommandError as exc:
            log.error("gateway command refused: %s", exc)
            return
        self.apply(command)

    def apply(self, command: Command) -> dict[str, Any]:
        flags = self.store.load()
        changed: dict[str, FlagRecord] = {}
        for w in command.withdraw:
            old = flags.get(w.participant)
            if old is None or (w.erase and not old.erase):
                since = old.since_ns if old else self.clock_ns()
                changed[w.participant] = FlagRecord(w.erase, since, command.id)
        if changed:
            flags.update(changed)
            self.store.save(flags)  # 1. the flag first: it survives whatever happens next
            self.on_withdraw(frozenset(changed))  # 2. sensors off, open batches dropped
        erase = [p for p, r in flags.items() if r.erase]
        erased = {p: self.outbox.erase(participant_prefixes(self.study, [p])) for p in erase}
        purged = {p: e["messages"] for p, e in erased.items()}
        raw_purged = (
            {p: self.raw_store.erase_participant(p) for p in erase} if self.raw_store else {}
        )
        for participant in sorted(changed):
            log.info(
                "participant withdrawn",
                extra={
                    "participant": participant,
                    "erase": changed[participant].erase,
                    "outbox_purged": purged.get(participant, 0),
                    "raw_purged": raw_purged.get(participant, 0),
                    "command": command.id,
                },
            )
        ack: dict[str, Any] = {"id": command.id, "withdrawn": sorted(flags), "purged": purged}
        if erased:
            # Journaled samples of open batches, and whether the file and its WAL
            # were rewritten without the deleted bytes (1) or could not be (0).
            ack["journal_purged"] = {p: e["journal"] for p, e in erased.items()}
            ack["scrubbed"] = {
                p: e["scrubbed"] for p, e in erased.items() if e["messages"] or e["journal"]
            }
        if self.raw_store is not None:
            ack["raw_purged"] = raw_purged
        self.acknowledge(ack)
        return ack
