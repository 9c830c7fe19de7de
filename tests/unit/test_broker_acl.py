"""Rendering of a gateway's broker ACL block (the real broker: test_security_broker.py)."""

from __future__ import annotations

from pathlib import Path

from collector import wire
from processing.admin import broker
from processing.admin.settings import BrokerSettings


def test_gateway_block_grants_every_participant_stream_of_its_own_participants_only() -> None:
    block = broker.gateway_acl_block("pilot", "gw-a", ["p-2", "p-1"])
    writes = {ln.split(" ", 2)[2] for ln in block.splitlines() if ln.startswith("topic write")}
    expected = {
        wire.participant_topic("pilot", p, stream)
        for p in ("p-1", "p-2")
        for stream in wire.PARTICIPANT_STREAMS
    }
    expected |= {wire.gateway_topic("pilot", "gw-a", leaf) for leaf in ("state", "health")}
    assert writes == expected
    # Self-reports go under the participant's gateway account and nowhere else.
    assert "topic write wellsense/v1/pilot/p-1/selfreport" in block.splitlines()
    assert not any("p-3" in ln for ln in block.splitlines())
    reads = [ln for ln in block.splitlines() if ln.startswith("topic read")]
    assert reads == [
        "topic read wellsense/v1/pilot/_gateways/gw-a/cmd",
        "topic read wellsense/v1/pilot/_gateways/gw-a/stored",
    ]
    # A gateway reads its own storage confirmations and may never write one.
    assert not any(ln.startswith("topic write") and "stored" in ln for ln in block.splitlines())


def test_only_processing_writes_storage_confirmations() -> None:
    header = broker.render_acl_header("pilot", _settings())
    users: dict[str, list[str]] = {}
    current = ""
    for line in header.splitlines():
        if line.startswith("user "):
            current = line.split()[1]
        elif line.startswith("topic ") and current:
            users.setdefault(current, []).append(line)
    processing = [u for u in users if u.startswith("wellsense-processing-")]
    assert processing  # one account per worker, one for the alert publisher
    for user in processing:
        assert "topic write wellsense/v1/pilot/_gateways/+/stored" in users[user]
        assert "topic read wellsense/v1/pilot/_gateways/+/stored" not in users[user]


def test_acl_participants_reads_back_the_participants(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    broker.set_gateway_acl(acl, "pilot", "gw-a", ["p-1", "p-2"])
    broker.set_gateway_acl(acl, "pilot", "gw-b", ["p-3"])
    assert broker.acl_participants(acl, "gw-a") == {"p-1", "p-2"}
    broker.set_gateway_acl(acl, "pilot", "gw-a", ["p-2"])
    assert broker.acl_participants(acl, "gw-a") == {"p-2"}
    assert "p-1/selfreport" not in acl.read_text()


def _settings() -> BrokerSettings:
    p = Path("/nonexistent")
    return BrokerSettings(
        public_url="mqtts://broker.example:8883",
        ca_file=p,
        cert_file=p,
        key_file=p,
        port=8883,
        bind_address="0.0.0.0",
        password_file=p,
        acl_file=p,
        processing_user="wellsense-processing",
        admin_user="wellsense-admin",
    )


def test_every_processing_worker_and_the_alert_publisher_get_their_own_account() -> None:
    from processing.admin.settings import BrokerSettings

    settings = BrokerSettings(
        public_url="mqtts://b:8883",
        ca_file=Path("ca"),
        cert_file=Path("c"),
        key_file=Path("k"),
        port=8883,
        bind_address="0.0.0.0",
        password_file=Path("p"),
        acl_file=Path("a"),
        processing_user="wellsense-processing",
        admin_user="wellsense-admin",
        processing_workers=("w1", "w2"),
    )
    text = broker.render_acl_header("pilot", settings)
    users = [ln.split()[1] for ln in text.splitlines() if ln.startswith("user ")]
    assert users == [
        "wellsense-processing-w1",
        "wellsense-processing-w2",
        "wellsense-processing-rules",
        "wellsense-admin",
    ]
    for block in text.split("\nuser ")[1:4]:
        assert "topic read wellsense/v1/pilot/#" in block
        assert "topic write wellsense/v1/pilot/_alerts/#" in block
        assert "topic write wellsense/v1/pilot/+" not in block
    conf = broker.render_conf(settings)
    lines = [ln for ln in conf.splitlines() if ln and not ln.startswith("#")]
    listener = next(i for i, ln in enumerate(lines) if ln.startswith("listener "))
    assert lines.index("use_username_as_clientid true") > listener


def test_a_re_run_of_broker_init_renews_the_header_and_keeps_the_gateways(tmp_path: Path) -> None:
    from processing.admin import settings
    from tests.integration.security_stack import write_admin_toml

    config = settings.load(write_admin_toml(tmp_path, port=8883))
    acl = config.broker.acl_file
    broker.init(config, tmp_path / "conf.d", tmp_path / "secrets")
    broker.set_gateway_acl(acl, config.study.id, "gw-a", ["p-1"])
    # An ACL from before per-worker accounts, with a gateway block.
    old = acl.read_text().replace("wellsense-processing-w1", "wellsense-processing")
    acl.write_text(old)
    report = broker.init(config, tmp_path / "conf.d", tmp_path / "secrets")
    text = acl.read_text()
    assert "kept 1 gateway blocks" in report
    assert "user wellsense-processing\n" not in text
    assert text.count("user wellsense-processing-w1\n") == 1
    assert broker.acl_participants(acl, "gw-a") == {"p-1"}
    assert (tmp_path / "secrets" / "processing-rules-mqtt-password").stat().st_mode & 0o077 == 0
