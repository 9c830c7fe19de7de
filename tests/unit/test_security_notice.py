"""The participant notice follows the actual configuration."""

from __future__ import annotations

from pathlib import Path

from processing.admin import notice, settings

REPO = Path(__file__).resolve().parents[2]


def _admin(tmp_path: Path, retention_days: int) -> settings.AdminConfig:
    text = (REPO / "deploy/server/admin.sample.toml").read_text()
    text = text.replace("retention_days = 730", f"retention_days = {retention_days}")
    token = tmp_path / "token"
    token.write_text("t0k3n-not-in-the-notice\n")
    token.chmod(0o600)
    text = text.replace('"/etc/wellsense/influx-erasure-token"', f'"{token}"')
    (tmp_path / "admin.toml").write_text(text)
    return settings.load(tmp_path / "admin.toml")


def _gateway(tmp_path: Path, batch_s: int) -> Path:
    text = (REPO / "deploy/gateway/collector.sample.toml").read_text()
    text = text.replace("max_interval_s = 10", f"max_interval_s = {batch_s}")
    (tmp_path / "collector.toml").write_text(text)
    return tmp_path / "collector.toml"


def test_notice_numbers_come_from_the_configuration(tmp_path: Path) -> None:
    from collector.config import load

    admin = _admin(tmp_path, 365)
    gateway = notice._gateway_config(_gateway(tmp_path, 30), load)
    text = notice.render(admin, gateway, {"features": {"hrv_window_s": 120}})
    assert "1 year (365 days)" in text
    assert "every\n30 seconds" in text or "every 30 seconds" in text.replace("\n", " ")
    assert "windows of 2 minutes" in text and "broker.example.org" in text
    assert "every 15 minutes" in text  # battery_interval_s = 900 in the sample
    assert "Tell the study team" in text and "study@example.org" in text
    assert "t0k3n" not in text
    for jargon in ("MQTT", "InfluxDB", "TLS", "bucket", "pseudonym"):
        assert jargon not in text
    other = notice.render(_admin(tmp_path, 90), gateway, {"features": {"enabled": False}})
    assert "90 days" in other and "does not compute summaries" in other


def test_notice_cli(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _admin(tmp_path, 730)
    rc = notice.main(
        ["--config", str(tmp_path / "admin.toml"), "--collector", str(_gateway(tmp_path, 10))],
        prog="wellsense notice",
    )
    assert rc == 0 and "2 years (730 days)" in capsys.readouterr().out


def test_notice_says_only_features_leave_the_home_when_minimisation_is_on(tmp_path: Path) -> None:
    from collector.config import load

    admin = _admin(tmp_path, 365)
    path = _gateway(tmp_path, 10)
    plain = notice.render(admin, notice._gateway_config(path, load), {})
    assert "Only summaries leave your home" not in plain
    assert "only until they have been sent" in plain
    text = path.read_text().replace("enabled = false", "enabled = true")
    path.write_text(text.replace("keep_raw_days = 7", "keep_raw_days = 3"))
    minimised = notice.render(admin, notice._gateway_config(path, load), {})
    flat = " ".join(minimised.split())
    assert "Only summaries leave your home" in flat
    assert "one for every 5 minutes" in flat
    assert "stay on the gateway for 3 days and are then deleted" in flat
    assert "the detailed readings for 3 days, then they are deleted" in flat
    for jargon in ("MQTT", "InfluxDB", "HRV", "raw data", "features"):
        assert jargon not in minimised
