"""The ``[notify]`` table of the processing configuration.

.. code-block:: toml

    [notify]
    state_dir = "/var/lib/wellsense/notify"   # queue + lease (SQLite) of this host
    lease_s = 30                              # a dead leader is replaced after this long
    max_attempts = 8                          # then the delivery is marked failed
    backoff_s = 30                            # first retry delay, doubled each time
    backoff_max_s = 3600
    retention_days = 90                       # finished deliveries kept this long

    [notify.recipients.study-team]
    urls_file = "/etc/wellsense/notify/study-team.urls"   # 0600, one Apprise URL a line
    digest = "08:00"                                      # optional: one message a day

Apprise URLs carry passwords and webhook tokens, so they are secrets: they
come from ``urls_file`` (owner-only, like every secret file) or from
``$WELLSENSE_NOTIFY_<NAME>_URLS`` (name upper-cased, ``-`` -> ``_``; URLs
separated by whitespace), never from the TOML. Every URL is parsed by
Apprise at start; an error names the option and the line, never the URL.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from collector.tomlconfig import ConfigError, Section

DEFAULT_LEASE_S = 30.0
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_S = 30.0
DEFAULT_BACKOFF_MAX_S = 3600.0
DEFAULT_RETENTION_DAYS = 90
_DIGEST = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient name of the rules and its delivery URLs (secret: not printed)."""

    name: str
    urls: tuple[str, ...] = field(repr=False)
    digest_at: dt.time | None = None  # local time of the daily digest; None = at once


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    state_dir: Path
    recipients: dict[str, Recipient]
    lease_s: float = DEFAULT_LEASE_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_s: float = DEFAULT_BACKOFF_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    retention_days: int = DEFAULT_RETENTION_DAYS

    @property
    def database(self) -> Path:
        return self.state_dir / "notify.sqlite"


def env_var(name: str) -> str:
    """The environment variable that may hold recipient ``name``'s URLs."""
    return "WELLSENSE_NOTIFY_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_URLS"


def parse(sec: Section) -> NotifyConfig | None:
    """``[notify]`` -> :class:`NotifyConfig`, or None when the table is absent."""
    if not sec.has("recipients") and not sec.has("state_dir"):
        sec.reject_unknown()
        return None
    state_dir = sec.path_value("state_dir", ...)
    assert state_dir is not None
    lease_s = sec.float("lease_s", DEFAULT_LEASE_S, lo=3.0, hi=3600)
    max_attempts = sec.int("max_attempts", DEFAULT_MAX_ATTEMPTS, lo=1, hi=100)
    backoff_s = sec.float("backoff_s", DEFAULT_BACKOFF_S, lo=0.1, hi=86400)
    backoff_max_s = sec.float("backoff_max_s", DEFAULT_BACKOFF_MAX_S, lo=backoff_s, hi=7 * 86400)
    retention_days = sec.int("retention_days", DEFAULT_RETENTION_DAYS, lo=1, hi=3650)
    table = sec.table("recipients")
    recipients: dict[str, Recipient] = {}
    names = sorted(table._data)  # the keys are the recipient names
    for name in names:
        if not _NAME.match(name):
            raise table.error(name, "recipient names: lower-case letters, digits, '-' and '_'")
        recipients[name] = _recipient(name, table.table(name))
    table.reject_unknown()
    sec.reject_unknown()
    return NotifyConfig(
        state_dir, recipients, lease_s, max_attempts, backoff_s, backoff_max_s, retention_days
    )


def _recipient(name: str, sec: Section) -> Recipient:
    if sec.has("urls"):
        raise sec.error(
            "urls", f"delivery URLs carry secrets: put them in urls_file (0600) or ${env_var(name)}"
        )
    digest_text = sec.str("digest", None)
    digest_at = None
    if digest_text is not None:
        m = _DIGEST.match(digest_text)
        if not m:
            raise sec.error("digest", f"expected a local time HH:MM, got {digest_text!r}")
        digest_at = dt.time(int(m.group(1)), int(m.group(2)))
    lines: list[tuple[str, str]] = []  # (where, url)
    from_env = os.environ.get(env_var(name), "")
    if from_env.strip():
        lines = [(f"${env_var(name)} item {i + 1}", u) for i, u in enumerate(from_env.split())]
    else:
        path = sec.path_value("urls_file")
        if path is None:
            raise sec.error("urls_file", f"no delivery URLs: set urls_file or ${env_var(name)}")
        lines = [(f"urls_file line {i}", u) for i, u in _read_urls(sec, path)]
    sec.reject_unknown()
    if not lines:
        raise sec.error("urls_file", "holds no URL")
    for where, url in lines:
        problem = check_url(url)
        if problem:
            raise sec.error("urls_file" if "line" in where else "urls", f"{where}: {problem}")
    return Recipient(name, tuple(u for _, u in lines), digest_at)


def _read_urls(sec: Section, path: Path) -> list[tuple[int, str]]:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise sec.error("urls_file", f"{path} is readable by others; run: chmod 600 {path}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise sec.error("urls_file", f"{path} does not exist") from None
    except OSError as exc:
        raise sec.error("urls_file", f"cannot read {path}: {exc.strerror}") from None
    out = []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append((i, line))
    return out


def check_url(url: str) -> str | None:
    """Why Apprise cannot use ``url`` (without repeating it: it holds secrets), or None."""
    import logging

    logging.getLogger("apprise").propagate = False  # it logs hosts and addresses
    import apprise

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        return "not a URL (expected scheme://...)"
    if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
        return f"Apprise cannot use this {scheme}:// URL (unknown scheme or missing parts)"
    return None


def check_recipients(config: NotifyConfig | None, wanted: dict[str, list[str]]) -> None:
    """Every recipient a rule names must be configured; ``wanted``: name -> rule ids."""
    if config is None:
        return
    missing = sorted(set(wanted) - set(config.recipients))
    if missing:
        name = missing[0]
        rules = ", ".join(sorted(wanted[name])[:3])
        raise ConfigError(
            f"[notify.recipients] {name}: named by rule {rules} but not configured "
            f"(add [notify.recipients.{name}] with urls_file)"
        )
