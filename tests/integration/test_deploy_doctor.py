"""`wellsense doctor` against the emulated BlueZ and the suite's real Mosquitto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import doctor
from tests.integration.harness import Emulator, write_collector_config
from tests.integration.security_stack import scratch
from wellsense_cli.localservices import Mosquitto, make_test_pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    sim = Emulator(scratch("doctor-sim"), participants=1).start()
    yield sim
    sim.stop()


def _run(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = doctor.main(["--config", str(config)], prog="wellsense doctor")
    return rc, capsys.readouterr().out


@pytest.fixture
def gateway(
    tmp_path: Path, mosquitto: Mosquitto, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Path:
    for name in ("WELLSENSE_MQTT_URL", "WELLSENSE_MQTT_USERNAME", "WELLSENSE_MQTT_CA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WELLSENSE_MQTT_PASSWORD", mosquitto.password)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", emulator.bus)
    return write_collector_config(
        tmp_path / "collector.toml",
        mosquitto,
        study="doc",
        participants=1,
        data_dir=tmp_path / "data",
    )


def test_a_healthy_gateway_passes(
    gateway: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = _run(gateway, capsys)
    assert rc == 0, out
    assert "hci0 is present and on" in out and "TLS verified" in out and "Nothing to fix" in out
    assert mosquitto.password not in out


def test_wrong_password_says_what_to_do_without_showing_it(
    gateway: Path,
    mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WELLSENSE_MQTT_PASSWORD", "wrong-password-123")
    rc, out = _run(gateway, capsys)
    assert rc == 1 and "refused" in out and "fresh enrolment bundle" in out
    assert "wrong-password-123" not in out and mosquitto.password not in out


def test_untrusted_certificate_unreachable_broker_missing_adapter_broken_outbox(
    gateway: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other_ca, _, _ = make_test_pki(tmp_path / "other-pki")
    text = gateway.read_text()
    ca_line = next(ln for ln in text.splitlines() if ln.startswith("ca_file"))
    gateway.write_text(text.replace(ca_line, f'ca_file = "{other_ca}"'))
    rc, out = _run(gateway, capsys)
    assert rc == 1 and "certificate not trusted" in out and "ca.crt" in out

    url_line = next(ln for ln in text.splitlines() if ln.startswith("url"))
    bad = text.replace(url_line, 'url = "mqtts://127.0.0.1:1"')
    bad = bad.replace("[ble]\n", '[ble]\nadapter = "hci7"\n')
    gateway.write_text(bad)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "outbox.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    rc, out = _run(gateway, capsys)
    assert rc == 1
    assert "cannot reach 127.0.0.1:1" in out
    assert "hci7 not found (found: hci0)" in out
    assert "outbox" in out and "damaged" in out and "move" in out


def test_bad_config_is_reported_in_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.toml").write_text('[gateway]\nstudy = "Bad Study"\n')
    rc, out = _run(tmp_path / "c.toml", capsys)
    assert rc == 2 and "[gateway] study" in out  # EXIT_USAGE: a configuration error


def test_bluez_version_parsing() -> None:
    class Out:
        stdout = "bluetoothctl: 5.66\n"

    assert doctor.check_bluez_version((5, 66)).status == doctor.OK
    assert doctor.check_bluez_version((5, 50)).status == doctor.FAIL
    assert doctor.check_bluez_version(None).status == doctor.WARN
    if doctor.shutil.which("bluetoothctl"):
        assert doctor.bluez_version(lambda *a, **k: Out()) == (5, 66)
