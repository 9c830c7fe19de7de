"""Collector configuration: the shipped sample loads; mistakes name file, table and option."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import load
from collector.tomlconfig import ConfigError
from wellsense_resources import deploy_dir

# The sample the wheel ships (the checkout's deploy/ when run from one).
SAMPLE = deploy_dir() / "gateway" / "collector.sample.toml"


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ca = tmp_path / "ca.crt"
    ca.write_text("test CA")
    password = tmp_path / "mqtt-password"
    password.write_text("s3cret-value\n")
    password.chmod(0o600)
    text = SAMPLE.read_text().replace("/etc/wellsense/ca.crt", str(ca))
    text = text.replace("/etc/wellsense/mqtt-password", str(password))
    path = tmp_path / "collector.toml"
    path.write_text(text)
    for name in ("WELLSENSE_MQTT_PASSWORD", "WELLSENSE_MQTT_URL", "WELLSENSE_MQTT_CA"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_the_shipped_sample_loads(sample: Path) -> None:
    config = load(sample)
    assert (config.study, config.gateway) == ("pilot", "gw-0001")
    assert config.mqtt.password == "s3cret-value"
    assert config.sensors[0].device == "gw-0001-chest"
    assert config.outbox_path.name == "outbox.sqlite3"
    assert "s3cret-value" not in repr(config)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("mqtts://broker.example.org:8883", "mqtt://broker.example.org:1883"),
            "[mqtt] url: plain mqtt:// is refused",
        ),
        (('study = "pilot"', 'study = "Pilot Study"'), "[gateway] study:"),
        (("max_samples = 120", "max_samples = 0"), "[batch] max_samples: 0 is below"),
        (("keepalive_s = 30", "keepalive_s = 30\nkeepalive = 30"), "[mqtt] keepalive: unknown"),
        (('address = "C0:FF:EE:00:00:01"', 'address = "not-an-address"'), "[sensor#1] address:"),
        (
            (
                'address = "C0:FF:EE:00:00:01"',
                'address = "C0:FF:EE:00:00:01"\nservice_uuid = "180d"',
            ),
            "exactly one of",
        ),
        (('password_file = "', 'password = "inline"\n#'), "secrets are not allowed inline"),
        (
            ('address = "C0:FF:EE:00:00:01"', 'address = "C0:FF:EE:00:00:01"\nprofile = "garmin"'),
            "[sensor#1] profile: 'garmin' is not one of auto, hrs, pinetime, polar_h10",
        ),
        (("enabled = false", 'enabled = "yes"'), "[minimise] enabled: expected true or false"),
        (("window_s = 300", "window_s = 7"), "[minimise] window_s: 7 is below the minimum 60"),
        (("window_s = 300", "window_s = 420"), "[minimise] window_s: 420 does not divide a day"),
        (("keep_raw_days = 7", "keep_raw_days = 0"), "[minimise] keep_raw_days: 0 is below"),
        (
            ("keep_raw_days = 7", "keep_raw_days = 7\nkeep_days = 3"),
            "[minimise] keep_days: unknown",
        ),
    ],
)
def test_mistakes_name_the_option(sample: Path, edit: tuple[str, str], message: str) -> None:
    text = sample.read_text()
    assert edit[0] in text
    sample.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as info:
        load(sample)
    assert message in str(info.value)
    assert str(sample) in str(info.value)


def test_sensor_profile_defaults_to_hrs_and_is_configurable(sample: Path) -> None:
    assert load(sample).sensors[0].profile == "hrs"
    text = sample.read_text().replace(
        'address = "C0:FF:EE:00:00:01"', 'address = "C0:FF:EE:00:00:01"\nprofile = "polar_h10"', 1
    )
    sample.write_text(text)
    assert load(sample).sensors[0].profile == "polar_h10"


def test_minimisation_is_off_by_default_and_configurable(sample: Path) -> None:
    config = load(sample)
    assert (config.minimise.enabled, config.minimise.window_s) == (False, 300)
    assert config.minimise.keep_raw_days == 7
    assert config.raw_store_path == config.data_dir / "raw.sqlite3"
    text = sample.read_text()
    start = text.index("[minimise]")
    end = text.index("[[sensor]]")
    sample.write_text(text[:start] + text[end:])  # no table at all: the defaults
    assert load(sample).minimise == config.minimise
    sample.write_text(
        text.replace("enabled = false", "enabled = true").replace(
            "window_s = 300", "window_s = 120"
        )
    )
    on = load(sample).minimise
    assert (on.enabled, on.window_s, on.keep_raw_days) == (True, 120, 7)


def test_a_password_file_readable_by_others_is_refused(sample: Path, tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load(sample)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
