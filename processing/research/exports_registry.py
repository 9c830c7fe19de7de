"""Which exports hold which participants: so an erasure can name the files to delete.

``wellsense export`` appends one JSON line per export to the registry
(``$WELLSENSE_EXPORT_REGISTRY``, default ``/var/lib/wellsense/exports.jsonl``)::

    {"schema": "wellsense.export.v1", "ts": "2026-...Z", "user": "alice", "host": "srv",
     "study": "pilot", "format": "csv", "files": ["/abs/export/hr.csv", ...],
     "participants_sha256": ["<sha256 of study/pseudonym>", ...]}

Pseudonyms are stored hashed like the erasure tombstones
(:func:`processing.tombstones.digest`). ``participant erase`` lists every
export of the participant in its receipt; the files are outside WellSense's
reach (copied, e-mailed, on laptops), so staff delete them by hand.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from processing.tombstones import digest

ENV: Final = "WELLSENSE_EXPORT_REGISTRY"
DEFAULT_PATH: Final = Path("/var/lib/wellsense/exports.jsonl")
SCHEMA: Final = "wellsense.export.v1"


def default_path() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT_PATH)


def record(
    path: Path,
    *,
    study: str,
    fmt: str,
    files: Iterable[Path],
    participants: Iterable[str],
) -> None:
    """Append one export (fsynced: the line must outlive a crash right after)."""
    entry = {
        "schema": SCHEMA,
        "ts": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user": getpass.getuser(),
        "host": socket.gethostname(),
        "study": study,
        "format": fmt,
        "files": sorted(str(Path(f).resolve()) for f in files),
        "participants_sha256": sorted({digest(study, p) for p in participants}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a") as f:
        f.write(json.dumps(entry, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())


def exports_of(path: Path, study: str, participant: str) -> list[dict[str, Any]]:
    """The registry's exports that contain ``participant`` (oldest first)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    wanted = digest(study, participant)
    found = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn last line after a crash
        if isinstance(entry, dict) and wanted in entry.get("participants_sha256", ()):
            found.append({k: entry.get(k) for k in ("ts", "user", "host", "format", "files")})
    return found
