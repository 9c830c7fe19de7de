"""Configuration: the sample loads, and every mistake names its option."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from processing import config

REPO = Path(__file__).resolve().parents[2]
BASE = """
[service]
study = "pilot"
[mqtt]
url = "mqtts://broker.example:8883"
username = "proc"
[influx]
url = "http://127.0.0.1:8086"
org = "wellsense"
bucket = "wellsense"
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WELLSENSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WELLSENSE_INFLUX_TOKEN", "tok-secret")
    monkeypatch.setenv("WELLSENSE_MQTT_PASSWORD", "pw-secret")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "processing.toml"
    path.write_text(text)
    return path


def test_minimal_config_has_documented_defaults(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, BASE))
    assert (cfg.study, cfg.worker, cfg.max_inflight, cfg.shared_group) == (
        "pilot",
        "w1",
        1000,
        None,
    )
    assert cfg.client_id == "wellsense-proc-pilot-w1"
    assert cfg.influx.token == "tok-secret" and "tok-secret" not in repr(cfg)
    assert "pw-secret" not in repr(cfg)
    assert cfg.features.hrv_window_s == 300
    assert cfg.features.catchup_h == 3.0
    assert cfg.topic_filters() == [
        "wellsense/v1/pilot/+/+",
        "wellsense/v1/pilot/_gateways/+/health",
        "wellsense/v1/pilot/_gateways/+/state",
    ]


def test_shared_group_prefixes_every_filter(tmp_path: Path) -> None:
    cfg = config.load(
        write(tmp_path, BASE.replace('study = "pilot"', 'study = "pilot"\nshared_group = "proc"'))
    )
    assert all(f.startswith("$share/proc/wellsense/v1/pilot/") for f in cfg.topic_filters())


def test_environment_supplies_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WELLSENSE_MQTT_URL", "mqtts://10.0.0.1:8884")
    monkeypatch.setenv("WELLSENSE_INFLUX_URL", "https://influx.example")
    monkeypatch.setenv("WELLSENSE_INFLUX_ORG", "o")
    monkeypatch.setenv("WELLSENSE_INFLUX_BUCKET", "b")
    cfg = config.load(write(tmp_path, '[service]\nstudy = "s1"\n'))
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.influx.url, cfg.influx.bucket) == (
        "10.0.0.1",
        8884,
        "https://influx.example",
        "b",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('study = "pilot"', 'study = "Pilot Study"'), "[service] study"),
        (('study = "pilot"', ""), "[service] study: is required"),
        (("[service]", "[service]\nmax_inflight = 0"), "[service] max_inflight: 0 is below"),
        (("[service]", '[service]\nshared_group = "a/b"'), "[service] shared_group"),
        (("[service]", "[service]\nworkers = 2"), "[service] workers: unknown option"),
        (("[influx]", '[influx]\ntoken = "inline"'), "[influx] token: secrets are not allowed"),
        (('url = "http://127.0.0.1:8086"', 'url = "ftp://x"'), "[influx] url"),
        (("[influx]", '[features]\ntimezone = "Mars/Base"\n[influx]'), "[features] timezone"),
        (("[influx]", "[features]\nhrv_window_s = 7\n[influx]"), "[features] hrv_window_s"),
        (("[influx]", "[features]\ncatchup_h = -1\n[influx]"), "[features] catchup_h"),
        (("mqtts://broker.example:8883", "mqtt://broker.example"), "[mqtt] url: plain mqtt"),
        (("[influx]", "[extra]\n[influx]"), "extra: unknown option"),
    ],
)
def test_errors_name_the_option(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(write(tmp_path, BASE.replace(*change, 1)))
    assert message in str(err.value)
    assert "secret" not in str(err.value).replace("secrets are not allowed", "")


def test_token_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WELLSENSE_INFLUX_TOKEN")
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")
    token.chmod(0o644)
    text = BASE.replace("[influx]", f'[influx]\ntoken_file = "{token}"')
    with pytest.raises(config.ConfigError, match="readable by others"):
        config.load(write(tmp_path, text))
    token.chmod(0o600)
    assert config.load(write(tmp_path, text)).influx.token == "tok-from-file"
    monkeypatch.delenv("WELLSENSE_MQTT_PASSWORD")
    token.unlink()
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(write(tmp_path, text))


def test_missing_token_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WELLSENSE_INFLUX_TOKEN")
    with pytest.raises(config.ConfigError, match=r"\[influx\] token_file: no token"):
        config.load(write(tmp_path, BASE))


def test_the_deploy_sample_is_valid(tmp_path: Path) -> None:
    text = (REPO / "deploy" / "server" / "processing.sample.toml").read_text()
    for name in ("mqtt-password", "influx-token", "ca.crt"):
        (tmp_path / name).write_text("x")
        (tmp_path / name).chmod(0o600)
    cfg = config.load(write(tmp_path, text.replace("/etc/wellsense", str(tmp_path))))
    assert cfg.study == "pilot" and cfg.max_inflight == 1000 and cfg.features.settle_s == 30


def test_cli_exits_2_on_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from processing import cli

    assert cli.main(["--config", str(tmp_path / "missing.toml")], prog="wellsense process") == 2
    assert "no such configuration file" in capsys.readouterr().err
