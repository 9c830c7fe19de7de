"""Alert delivery: configuration, the SQLite queue and lease, and real sends.

Email goes to a real local SMTP server (aiosmtpd) and webhooks to a real
local HTTP server, through Apprise; time is injected where backoff and
digests are checked.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from collector.tomlconfig import ConfigError, Section
from processing.notify import settings
from processing.notify.dispatch import Dispatcher, describe, due_ns
from processing.notify.outbox import (
    FAILED,
    INTERRUPTED,
    PENDING,
    SENT,
    LeaseLost,
    Outbox,
    target_id,
)
from processing.notify.settings import NotifyConfig, Recipient
from tests.unit.notify_servers import (
    SmtpServer,
    WebhookServer,
    free_port,
    smtp_server,
    webhook_server,
)

__all__ = ["smtp_server", "webhook_server"]

NS = 1_000_000_000
T0 = int(dt.datetime(2025, 11, 26, 9, 30, tzinfo=dt.UTC).timestamp()) * NS


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def event(
    rule: str = "adherence-no-data",
    state: str = "firing",
    ts: int = T0,
    p: str = "p-1",
    notify: tuple[str, ...] = ("study-team",),
) -> dict[str, Any]:
    return {
        "schema": "wellsense.alert.v1",
        "study": "s1",
        "rule": rule,
        "state": state,
        "severity": "warning",
        "scope": "participant",
        "participant": p,
        "ts_ns": ts,
        "since_ns": ts,
        "value": 7.0,
        "message": f"{rule}: minutes_since_last_sample > 360 (value 420)",
        "notify": list(notify),
        "description": "No data from the participant's strap for 6 hours",
    }


def section(tmp_path: Path, data: dict[str, Any]) -> Section:
    return Section(tmp_path / "processing.toml", "notify", data)


def urls_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "team.urls"
    path.write_text(text)
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- configuration


def test_config_reads_urls_from_a_private_file(tmp_path: Path) -> None:
    f = urls_file(tmp_path, "# the team\njson://127.0.0.1:9/hook\nntfy://localhost/wellsense\n")
    cfg = settings.parse(
        section(
            tmp_path,
            {
                "state_dir": str(tmp_path / "q"),
                "recipients": {"study-team": {"urls_file": str(f), "digest": "08:00"}},
            },
        )
    )
    assert cfg is not None
    team = cfg.recipients["study-team"]
    assert team.urls == ("json://127.0.0.1:9/hook", "ntfy://localhost/wellsense")
    assert team.digest_at == dt.time(8, 0)
    assert "json://" not in repr(team)  # URLs are secrets


def test_config_without_the_table_is_off(tmp_path: Path) -> None:
    assert settings.parse(section(tmp_path, {})) is None


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ({"urls": ["json://x/y"]}, "[notify.recipients.study-team] urls: delivery URLs carry"),
        ({}, "urls_file: no delivery URLs"),
        ({"urls_file": "missing.urls"}, "does not exist"),
        ({"urls_file": "FILE", "digest": "8am"}, "digest: expected a local time HH:MM"),
        ({"urls_file": "FILE", "colour": "red"}, "colour: unknown option"),
    ],
)
def test_config_errors_name_the_option(
    tmp_path: Path, recipient: dict[str, Any], expected: str
) -> None:
    f = urls_file(tmp_path, "json://127.0.0.1:9/hook\n")
    recipient = {k: (str(f) if v == "FILE" else v) for k, v in recipient.items()}
    with pytest.raises(ConfigError, match=None) as info:
        settings.parse(
            section(tmp_path, {"state_dir": "q", "recipients": {"study-team": recipient}})
        )
    assert expected in str(info.value)


def test_config_refuses_a_loose_file_and_a_bad_url_without_printing_it(tmp_path: Path) -> None:
    loose = urls_file(tmp_path, "json://127.0.0.1:9/hook\n", mode=0o644)
    data = {"state_dir": "q", "recipients": {"team": {"urls_file": str(loose)}}}
    with pytest.raises(ConfigError, match="readable by others; run: chmod 600"):
        settings.parse(section(tmp_path, data))
    bad = urls_file(tmp_path, "json://127.0.0.1:9/hook\nsecretscheme://user:hunter2@host\n")
    with pytest.raises(ConfigError) as info:
        settings.parse(section(tmp_path, {**data, "recipients": {"team": {"urls_file": str(bad)}}}))
    text = str(info.value)
    assert "[notify.recipients.team] urls_file: urls_file line 2: Apprise cannot use" in text
    assert "hunter2" not in text


def test_config_urls_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WELLSENSE_NOTIFY_STUDY_TEAM_URLS", "json://127.0.0.1:9/a json://h/b")
    cfg = settings.parse(section(tmp_path, {"state_dir": "q", "recipients": {"study-team": {}}}))
    assert cfg is not None and len(cfg.recipients["study-team"].urls) == 2


def test_every_rule_recipient_must_be_configured(tmp_path: Path) -> None:
    cfg = NotifyConfig(tmp_path, {"study-team": Recipient("study-team", ("json://h/x",))})
    settings.check_recipients(cfg, {"study-team": ["a"]})
    with pytest.raises(ConfigError, match="on-call: named by rule b but not configured"):
        settings.check_recipients(cfg, {"study-team": ["a"], "on-call": ["b"]})


def test_the_shipped_rules_name_three_recipients() -> None:
    from processing.cli import recipients_of
    from processing.rules.loader import load_rules

    rules = load_rules(Path(__file__).resolve().parents[2] / "rules")
    assert set(recipients_of(rules)) == {"study-team", "data-manager", "technical-support"}


# --------------------------------------------------------------------------- queue and lease


def test_an_event_is_queued_once_per_recipient_target(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "n.sqlite", clock=Clock())
    epoch = box.acquire("s1", "w1", 30)
    assert epoch == 1
    rows = [("study-team", "t1", False, T0), ("study-team", "t2", False, T0)]
    assert box.enqueue(event(), rows, holder="w1", epoch=1) == 2
    assert box.enqueue(event(), rows, holder="w1", epoch=1) == 0  # same event again
    assert box.enqueue(event(state="resolved"), rows, holder="w1", epoch=1) == 2
    assert box.enqueue(event(ts=T0 + NS), rows[:1], holder="w1", epoch=1) == 1
    assert len(box.deliveries("s1")) == 5
    assert oct(os.stat(tmp_path / "n.sqlite").st_mode & 0o777) == "0o600"


def test_the_lease_has_one_holder_and_passes_on_after_expiry(tmp_path: Path) -> None:
    clock = Clock()
    a = Outbox(tmp_path / "n.sqlite", clock=clock)
    b = Outbox(tmp_path / "n.sqlite", clock=clock)
    assert a.acquire("s1", "A", 30) == 1
    assert b.acquire("s1", "B", 30) is None
    a.enqueue(event(), [("team", "t", False, T0)], holder="A", epoch=1)
    assert [d.id for d in a.claim_due("s1", "A", 1)] == [1]  # A dies while sending
    clock.now += 29 * NS
    assert b.acquire("s1", "B", 30) is None  # not expired yet
    clock.now += 2 * NS
    assert b.acquire("s1", "B", 30) == 2
    assert [d.status for d in b.deliveries("s1")] == [INTERRUPTED]  # never sent twice
    with pytest.raises(LeaseLost):  # A's late writes are fenced off
        a.enqueue(event(ts=T0 + 5), [("team", "t", False, T0)], holder="A", epoch=1)
    with pytest.raises(LeaseLost):
        a.claim_due("s1", "A", 1)
    assert a.acquire("s1", "A", 30) is None
    b.release("s1", "B")
    assert a.acquire("s1", "A", 30) == 3


# --------------------------------------------------------------------------- real delivery


def notify_config(
    tmp_path: Path, **recipients: tuple[tuple[str, ...], dt.time | None]
) -> NotifyConfig:
    return NotifyConfig(
        tmp_path,
        {name: Recipient(name, urls, at) for name, (urls, at) in recipients.items()},
        max_attempts=3,
        backoff_s=60,
        backoff_max_s=600,
    )


def queue(box: Outbox, cfg: NotifyConfig, e: dict[str, Any]) -> None:
    rows = []
    for name in e["notify"]:
        r = cfg.recipients[name]
        rows += [
            (name, target_id(u), r.digest_at is not None, due_ns(r, box.clock(), "UTC"))
            for u in r.urls
        ]
    box.enqueue(e, rows, holder="w1", epoch=1)


def test_email_and_webhook_arrive_once_with_the_alert_text(
    tmp_path: Path, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    cfg = notify_config(
        tmp_path, **{"study-team": ((smtp_server.url(), webhook_server.url()), None)}
    )
    box = Outbox(tmp_path / "n.sqlite", clock=Clock())
    box.acquire("s1", "w1", 30)
    reports: list[tuple[str, str]] = []
    sender = Dispatcher(
        box,
        cfg,
        study="s1",
        holder="w1",
        report=lambda d, status, err: reports.append((d.recipient, status)),
    )
    queue(box, cfg, event())
    queue(box, cfg, event())  # a repeat is ignored
    assert sender.run_once(1) == 2
    assert sender.run_once(1) == 0
    [mail] = smtp_server.bodies()
    assert "Alert: adherence-no-data for participant p-1" in mail
    assert "No data from the participant's strap for 6 hours" in mail
    assert "minutes_since_last_sample > 360" in mail
    [hook] = webhook_server.received
    assert hook["title"] == "[WellSense s1] Alert: adherence-no-data for participant p-1"
    assert "Started at: 2025-11-26 09:30 UTC" in hook["message"]
    assert reports == [("study-team", SENT)] * 2
    assert {d.status for d in box.deliveries("s1")} == {SENT}


def test_a_failed_webhook_is_retried_with_backoff_then_given_up(
    tmp_path: Path, webhook_server: WebhookServer
) -> None:
    clock = Clock()
    cfg = notify_config(tmp_path, team=((webhook_server.url(),), None))
    box = Outbox(tmp_path / "n.sqlite", clock=clock)
    box.acquire("s1", "w1", 3600)
    sender = Dispatcher(box, cfg, study="s1", holder="w1")
    webhook_server.fail_next = 1
    queue(box, cfg, event(notify=("team",)))
    assert sender.run_once(1) == 1
    [d] = box.deliveries("s1")
    assert (d.status, d.attempts) == (PENDING, 1) and d.last_error
    clock.now += 59 * NS
    assert sender.run_once(1) == 0  # backoff: 60 s
    clock.now += 1 * NS
    assert sender.run_once(1) == 1
    assert len(webhook_server.received) == 1 and webhook_server.refused == 1
    assert box.deliveries("s1")[0].status == SENT

    webhook_server.fail_next = 3
    queue(box, cfg, event(ts=T0 + NS, notify=("team",)))
    for delay_s in (0, 60, 120):  # 60 s, then doubled
        clock.now += delay_s * NS
        assert sender.run_once(1) == 1
    last = box.deliveries("s1")[-1]
    assert (last.status, last.attempts) == (FAILED, 3)
    assert len(webhook_server.received) == 1


def test_a_digest_recipient_gets_one_message_a_day(tmp_path: Path, smtp_server: SmtpServer) -> None:
    clock = Clock()  # 09:30 UTC
    cfg = notify_config(tmp_path, team=((smtp_server.url(),), dt.time(8, 0)))
    box = Outbox(tmp_path / "n.sqlite", clock=clock)
    box.acquire("s1", "w1", 86400 * 2)
    sender = Dispatcher(box, cfg, study="s1", holder="w1")
    queue(box, cfg, event(notify=("team",)))
    queue(box, cfg, event(rule="adherence-battery-low", p="p-2", notify=("team",)))
    queue(box, cfg, event(state="resolved", ts=T0 + 3600 * NS, notify=("team",)))
    assert sender.run_once(1) == 0
    clock.now = int(dt.datetime(2025, 11, 27, 7, 59, tzinfo=dt.UTC).timestamp()) * NS
    assert sender.run_once(1) == 0
    clock.now += 60 * NS  # 08:00 the next day
    assert sender.run_once(1) == 3
    [digest] = smtp_server.bodies()
    assert "Daily digest: 3 alert change(s)" in digest
    assert "adherence-battery-low  participant p-2" in digest
    assert "resolved  adherence-no-data  participant p-1" in digest


def test_the_message_is_plain_language() -> None:
    title, body = describe(event(state="resolved"))
    assert title == "[WellSense s1] Resolved: adherence-no-data for participant p-1"
    assert body.splitlines()[0] == "Resolved (warning) for participant p-1."


def test_a_failure_reason_names_no_address_and_apprise_logs_stay_out() -> None:
    import logging

    from processing.notify.dispatch import apprise_send

    seen: list[str] = []

    class Keep(logging.Handler):  # what the service's root handler would write
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{record.name}: {record.getMessage()}")

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        port = free_port()  # nothing listens there
        url = f"mailto://127.0.0.1:{port}?from=a@example.org&to=b@example.org&mode=insecure"
        reason = apprise_send(url, "t", "b")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert reason is not None and "@" not in reason
    assert not [line for line in seen if line.startswith("apprise") or "@" in line]


def test_process_refuses_to_start_when_a_rule_recipient_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from processing.cli import main

    monkeypatch.setenv("WELLSENSE_MQTT_PASSWORD", "not-used-here")
    monkeypatch.setenv("WELLSENSE_INFLUX_TOKEN", "not-used-here")
    monkeypatch.setenv("WELLSENSE_NOTIFY_STUDY_TEAM_URLS", "json://127.0.0.1:9/hook")
    rules = Path(__file__).resolve().parents[2] / "rules"
    cfg = tmp_path / "processing.toml"
    cfg.write_text(
        '[service]\nstudy = "s1"\n[mqtt]\nurl = "mqtts://127.0.0.1:1"\nusername = "u"\n'
        '[influx]\nurl = "http://127.0.0.1:9"\norg = "o"\nbucket = "b"\n'
        f'[rules]\nenabled = true\ndirectory = "{rules}"\n'
        f'[notify]\nstate_dir = "{tmp_path / "q"}"\n[notify.recipients.study-team]\n'
    )
    import logging
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main(["--config", str(cfg)]) == 2
    finally:  # main() configures process-wide signals and logging: put them back
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "[notify.recipients] data-manager: named by rule" in err and "not configured" in err


def test_old_finished_deliveries_are_pruned_but_the_newest_state_stays(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "n.sqlite", clock=clock)
    box.acquire("s1", "w1", 3600)
    row = [("team", "t", False, T0)]
    box.enqueue(event(ts=T0), row, holder="w1", epoch=1)
    box.enqueue(event(state="resolved", ts=T0 + NS), row, holder="w1", epoch=1)
    box.enqueue(event(rule="other", ts=T0), row, holder="w1", epoch=1)
    for d in box.claim_due("s1", "w1", 1):
        box.finish([d.id], "w1", ok=True)
    box.enqueue(event(rule="late", ts=T0 - 5), [("team", "t", False, T0 + 10**15)], holder="w1",
                epoch=1)  # fmt: skip
    assert box.prune("s1", T0 + 10 * NS) == 1  # only the superseded firing
    left = {(d.rule, d.state) for d in box.deliveries("s1")}
    assert left == {("adherence-no-data", "resolved"), ("other", "firing"), ("late", "firing")}


def test_erasure_deletes_the_participants_rows_and_leaves_no_bytes(tmp_path: Path) -> None:
    path = tmp_path / "notify.sqlite"
    box = Outbox(path, clock=Clock())
    epoch = box.acquire("s1", "w1", 30)
    assert epoch is not None
    rows = [("study-team", target_id("mailto://x"), False, T0)]
    for i in range(30):
        box.enqueue(event(p="p-secret9", ts=T0 + i * NS), rows, holder="w1", epoch=epoch)
        box.enqueue(event(p="p-2", ts=T0 + i * NS), rows, holder="w1", epoch=epoch)
    files = [path, tmp_path / "notify.sqlite-wal"]
    assert any(b"p-secret9" in f.read_bytes() for f in files if f.exists())
    assert box.erase_participant("s1", "p-secret9", dry_run=True) == 30
    assert len(box.deliveries("s1")) == 60  # a dry run deletes nothing
    assert box.erase_participant("s1", "p-secret9") == 30
    assert {d.subject for d in box.deliveries("s1")} == {"p-2"}
    for f in files:
        if f.exists():
            assert b"p-secret9" not in f.read_bytes(), f
    box.close()
