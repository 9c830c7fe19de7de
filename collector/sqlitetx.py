"""The write transaction shared by the gateway's SQLite stores (outbox, raw store)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

    IMMEDIATE takes the write lock up front, so a transaction never has to
    upgrade from a read lock midway (which can fail with SQLITE_BUSY).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def secure_delete(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Deletes inside overwrite the freed content with zeros (``PRAGMA secure_delete``).

    Only around erasures: for everyday deletes (confirmed messages) the extra
    writes buy nothing.
    """
    conn.execute("PRAGMA secure_delete=ON")
    try:
        yield conn
    finally:
        conn.execute("PRAGMA secure_delete=OFF")


def scrub(conn: sqlite3.Connection) -> bool:
    """Leave no deleted bytes in the database file or its WAL; True if it fully worked.

    The WAL still holds the pages as they were before the delete, so it is
    checkpointed and truncated to 0 bytes; VACUUM then rebuilds the file
    without free pages, and the WAL it wrote is truncated again. A VACUUM that
    fails (disk full) leaves the zeroed pages of :func:`secure_delete`.
    """
    complete = True
    for step in ("PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"):
        try:
            row = conn.execute(step).fetchone()
        except sqlite3.OperationalError:
            complete = False  # disk full for VACUUM's copy; the checkpoints still run
            continue
        if row is not None and row[0] != 0:
            complete = False  # busy: another connection still reads an old snapshot
    return complete
