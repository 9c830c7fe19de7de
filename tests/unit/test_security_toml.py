"""TOML numbers are finite and nesting is bounded in every config and rule loader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector import config as collector_config
from collector.tomlconfig import ConfigError, load_toml
from processing import config as processing_config
from processing.rules.cli import main as rules_main
from processing.rules.loader import load_text

REPO = Path(__file__).resolve().parents[2]
DEEP = "x = " + "[" * 100_000 + "]" * 100_000 + "\n"
DEEP_TABLES = "x = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n"
PROCESSING = """
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


@pytest.mark.parametrize("value", ["nan", "+nan", "-nan", "inf", "-inf", "+inf"])
def test_non_finite_numbers_are_refused_by_name(tmp_path: Path, value: str) -> None:
    path = tmp_path / "processing.toml"
    path.write_text(PROCESSING + f"retry_max_s = {value}\n")
    with pytest.raises(ConfigError, match=r"influx\.retry_max_s: .* not a finite number"):
        processing_config.load(path)


def test_nan_in_the_collector_config_is_refused(tmp_path: Path) -> None:
    text = (REPO / "deploy/gateway/collector.sample.toml").read_text()
    assert "max_interval_s = 10" in text
    path = tmp_path / "collector.toml"
    path.write_text(text.replace("max_interval_s = 10", "max_interval_s = nan", 1))
    with pytest.raises(ConfigError, match="not a finite number"):
        collector_config.load(path)


@pytest.mark.parametrize("text", [DEEP, DEEP_TABLES], ids=["arrays", "inline-tables"])
def test_deep_nesting_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="nested deeper"):
        load_toml(path)
    rules, problems = load_text(text, path)
    assert rules == [] and "nested deeper" in str(problems[0])


def test_rules_check_reports_deep_or_nan_rule_files_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "deep.toml").write_text(DEEP)
    (tmp_path / "nan.toml").write_text('[[rule]]\nid = "x"\nthreshold = nan\n')
    code = rules_main(["check", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out + err
    assert "nested deeper" in out and "not a finite number" in out


def test_the_alert_publishers_account_needs_both_name_and_password(tmp_path: Path) -> None:
    secret = tmp_path / "rules-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    path = tmp_path / "processing.toml"
    path.write_text(PROCESSING + '[rules]\nmqtt_username = "wellsense-processing-rules"\n')
    with pytest.raises(ConfigError, match="set both mqtt_username and mqtt_password_file"):
        processing_config.load(path)
    path.write_text(path.read_text() + f'mqtt_password_file = "{secret}"\n')
    rules = processing_config.load(path).rules
    assert (rules.mqtt_username, rules.mqtt_password) == ("wellsense-processing-rules", "s3cret")
    assert "s3cret" not in repr(rules)
