"""Users, sessions, the audit log and alert acknowledgements (one SQLite file, 0600).

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's
second recommended option); a session is a random 256-bit token of which
only the SHA-256 is stored, so a copy of the database opens no session.
The audit log is append-only: triggers refuse every UPDATE and DELETE.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES: Final = ("staff", "researcher", "admin")  # each role may do what the ones before it can
SESSION_S: Final = 8 * 3600
MIN_PASSWORD: Final = 12
MAX_FAILURES: Final = 5  # failed sign-ins per user name ...
LOCKOUT_WINDOW_S: Final = 900.0  # ... in 15 minutes: further attempts wait

_SCHEMA = """
CREATE TABLE IF NOT EXISTS user (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    must_change INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session (
    token_sha256 TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES user(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS ack (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    since_ns INTEGER NOT NULL,
    user TEXT NOT NULL,
    note TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    UNIQUE (rule, subject, since_ns)
);
"""


class AccountError(ValueError):
    """A user name, role or password that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    must_change: bool = False

    def may(self, role: str) -> bool:
        """Whether this user has ``role`` or a role above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str


@dataclass(frozen=True, slots=True)
class Ack:
    rule: str
    subject: str
    since_ns: int
    user: str
    note: str
    ts_ns: int


def _hasher() -> PasswordHasher:
    return PasswordHasher()


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """One connection; create one per thread (the app opens one per request)."""

    def __init__(self, path: Path, *, clock: Callable[[], int] = time.time_ns) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()
        self.path = path
        self.clock = clock
        # one request's handler may hop threads (run_in_threadpool); never two at once
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        if new:
            path.chmod(0o600)

    def close(self) -> None:
        self.db.close()

    def _now(self) -> int:
        return int(self.clock())

    # -- users ---------------------------------------------------------------------

    def add_user(self, name: str, role: str, password: str, *, must_change: bool = False) -> User:
        _check_name(name)
        _check_role(role)
        _check_password(password)
        try:
            self.db.execute(
                "INSERT INTO user (name, role, hash, must_change, created_ns) VALUES (?,?,?,?,?)",
                (name, role, _hasher().hash(password), int(must_change), self._now()),
            )
        except sqlite3.IntegrityError:
            raise AccountError(
                f"user {name!r} exists; use 'passwd' to set a new password"
            ) from None
        return User(name, role, must_change)

    def set_password(self, name: str, password: str, *, must_change: bool = False) -> None:
        _check_password(password)
        cur = self.db.execute(
            "UPDATE user SET hash = ?, must_change = ? WHERE name = ?",
            (_hasher().hash(password), int(must_change), name),
        )
        if cur.rowcount == 0:
            raise AccountError(f"no user {name!r}")
        self.db.execute("DELETE FROM session WHERE user = ?", (name,))

    def set_role(self, name: str, role: str) -> None:
        _check_role(role)
        if self.db.execute("UPDATE user SET role = ? WHERE name = ?", (role, name)).rowcount == 0:
            raise AccountError(f"no user {name!r}")

    def users(self) -> list[User]:
        rows = self.db.execute("SELECT name, role, must_change FROM user ORDER BY name")
        return [User(n, r, bool(m)) for n, r, m in rows]

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs; None otherwise (same cost either way)."""
        row = self.db.execute(
            "SELECT role, hash, must_change FROM user WHERE name = ?", (name,)
        ).fetchone()
        ph = _hasher()
        stored = row[1] if row else _DUMMY_HASH
        try:
            ph.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if ph.check_needs_rehash(stored):
            self.db.execute("UPDATE user SET hash = ? WHERE name = ?", (ph.hash(password), name))
        return User(name, row[0], bool(row[2]))

    # -- sessions ------------------------------------------------------------------

    def open_session(self, user: User) -> tuple[str, str]:
        """A new session: (cookie token, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._now()
        self.db.execute("DELETE FROM session WHERE expires_ns < ?", (now,))
        self.db.execute(
            "INSERT INTO session (token_sha256, user, csrf, expires_ns) VALUES (?, ?, ?, ?)",
            (_sha(token), user.name, csrf, now + SESSION_S * 1_000_000_000),
        )
        return token, csrf

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        row = self.db.execute(
            "SELECT u.name, u.role, u.must_change, s.csrf FROM session s JOIN user u "
            "ON u.name = s.user WHERE s.token_sha256 = ? AND s.expires_ns > ?",
            (_sha(token), self._now()),
        ).fetchone()
        if row is None:
            return None
        return Session(User(row[0], row[1], bool(row[2])), row[3])

    def close_session(self, token: str | None) -> None:
        if token:
            self.db.execute("DELETE FROM session WHERE token_sha256 = ?", (_sha(token),))

    # -- audit and acknowledgements ------------------------------------------------

    def audit(self, user: str, action: str, target: str, detail: str = "") -> None:
        self.db.execute(
            "INSERT INTO audit (ts_ns, user, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (self._now(), user, action, target, detail[:500]),
        )

    def audit_log(self, limit: int = 500) -> list[tuple[int, str, str, str, str]]:
        rows = self.db.execute(
            "SELECT ts_ns, user, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [(int(a), b, c, d, e) for a, b, c, d, e in rows]

    def recent_failures(self, name: str, window_s: float = LOCKOUT_WINDOW_S) -> int:
        """Failed sign-ins for ``name`` in the last ``window_s`` (from the audit log)."""
        since = self._now() - int(window_s * 1e9)
        row = self.db.execute(
            "SELECT COUNT(*) FROM audit WHERE user = ? AND action = 'sign-in failed' AND ts_ns > ?",
            (name, since),
        ).fetchone()
        return int(row[0])

    def acknowledge(self, rule: str, subject: str, since_ns: int, user: str, note: str) -> Ack:
        """Record who handled an alert episode, when, and how; the first one stands."""
        now = self._now()
        self.db.execute(
            "INSERT OR IGNORE INTO ack (rule, subject, since_ns, user, note, ts_ns) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rule, subject, since_ns, user, note[:1000], now),
        )
        found = self.acks().get((rule, subject, since_ns))
        assert found is not None
        return found

    def acks(self) -> dict[tuple[str, str, int], Ack]:
        rows = self.db.execute("SELECT rule, subject, since_ns, user, note, ts_ns FROM ack")
        return {(r, s, int(t)): Ack(r, s, int(t), u, n, int(ts)) for r, s, t, u, n, ts in rows}


# Verified against when the user does not exist, so a wrong name costs as much as a wrong password.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$fz2IPsN8YgC9VQIqxCzGgQ$"
    "O3ABvzvdEengav2y3P6QX7z+Ely+RCZ5I13sgE8+BCs"
)


def _check_name(name: str) -> None:
    if not re.match(r"^[a-z][a-z0-9._-]{1,31}$", name):
        raise AccountError("user names: 2-32 lower-case letters, digits, '.', '_' or '-'")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"passwords need at least {MIN_PASSWORD} characters")


def new_password() -> str:
    """A random password for a first (one-time) login: 16 URL-safe characters."""
    return secrets.token_urlsafe(12)
