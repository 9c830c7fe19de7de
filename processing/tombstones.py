"""Erased pseudonyms, hashed: what processing must never write (back) again.

``participant erase`` adds a line to the tombstone file *before* anything
else, and processing reads it before every write: a message of an erased
participant that was still queued at the broker, unacknowledged, or in a
gateway's outbox when the erasure ran is discarded and confirmed (so the
gateway deletes it too), never written back after the receipt. The rules
forget the participant's alert state, and no alert is queued for them.

The file holds one SHA-256 hex digest of ``<study>/<pseudonym>`` per line,
never the pseudonym itself, so the list of erased participants is not a list
of pseudonyms to look up elsewhere. Comment lines start with ``#``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Final

DEFAULT_PATH: Final = Path("/var/lib/wellsense/erased.txt")
_HEADER: Final = "# wellsense erased participants: sha256 of '<study>/<pseudonym>' per line\n"


class TombstoneError(OSError):
    """The tombstone file exists but cannot be read: writing on would risk erased data."""


def digest(study: str, participant: str) -> str:
    return hashlib.sha256(f"{study}/{participant}".encode()).hexdigest()


def _read(path: Path) -> frozenset[str]:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError) as exc:
        raise TombstoneError(f"cannot read the tombstone file {path}: {exc}") from None
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def add(path: Path, study: str, participant: str) -> bool:
    """Add a participant (atomically, fsynced); False if already there."""
    known = _read(path)
    entry = digest(study, participant)
    if entry in known:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    body = _HEADER + "".join(f"{d}\n" for d in sorted(known | {entry}))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # processing runs as its own user; digests only
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


class Tombstones:
    """The tombstone file of one study, re-read whenever it changes.

    :meth:`refresh` costs one ``stat``; call it before each write. A file that
    becomes unreadable keeps the last list (and :meth:`refresh` raises, so the
    caller can log it); one unreadable at start raises :class:`TombstoneError`.
    """

    def __init__(self, path: Path, study: str) -> None:
        self.path = path
        self.study = study
        self._stamp: tuple[int, int, int] | None = None
        self._digests: frozenset[str] = frozenset()
        self._known: dict[str, bool] = {}
        self.refresh()

    def refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp == self._stamp:
            return
        self._digests = _read(self.path)
        self._stamp = stamp
        self._known.clear()

    def __contains__(self, participant: object) -> bool:
        if not isinstance(participant, str) or not self._digests:
            return False
        hit = self._known.get(participant)
        if hit is None:
            hit = digest(self.study, participant) in self._digests
            if len(self._known) < 100_000:
                self._known[participant] = hit
        return hit

    def __len__(self) -> int:
        return len(self._digests)
