"""No secret and no identity in any log the integration tests produced.

tests/integration/conftest.py archives every ``*.log`` file of the suite's
scratch folders and pytest's temporary folders, and every test's captured
output, as the tests run; this test runs last and scans the archive for the
passwords and tokens of the test services (and of every fixture that carries
one), for e-mail addresses, for the study team's identity canaries, and for
Bluetooth addresses in the services' JSON log lines.
"""

from __future__ import annotations

import json
import re

import pytest

from collector import wire
from collector.redact import ADDRESS
from tests.integration import conftest
from tests.integration.security_stack import IDENTITY_CANARIES, SECRETS
from wellsense_cli.localservices import Influxd, Mosquitto

pytestmark = pytest.mark.integration
EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z.]{2,}")


def test_no_secret_or_identity_in_any_log(mosquitto: Mosquitto, influxd: Influxd) -> None:
    secrets = {s for s in {*SECRETS, mosquitto.password, influxd.token} if len(s) >= 8}
    files = sorted(conftest.ARCHIVE.glob("*.txt"))
    scanned = addressless = 0
    for path in files:
        data = path.read_bytes()
        scanned += len(data)
        for secret in secrets:
            assert secret.encode() not in data, f"a secret ({secret[:3]}...) is in {path.name}"
        for canary in IDENTITY_CANARIES:
            assert canary.encode() not in data, f"an identity is in {path.name}"
        assert not EMAIL.findall(data), f"an e-mail address is in {path.name}"
        for line in data.splitlines():
            if (
                line.startswith(b"{")
                and b'"logger"' in line
                and b'"logger": "wellsense_sim' not in line
            ):
                # The services' JSON logs (collector, processing: the emulator,
                # which plays the straps, may name its own addresses) carry no
                # Bluetooth address: the emulated straps' C0:FF:EE:.. included.
                assert not ADDRESS.search(line.decode(errors="replace")), (
                    f"a Bluetooth address is in {path.name}: {line[:200]!r}"
                )
                addressless += 1
            if line.startswith(b"{") and b'"participant"' in line:
                with_id = json.loads(line).get("participant")
                if isinstance(with_id, str):
                    wire.check_id(with_id, "participant")  # a pseudonym, never a name
    assert secrets, "no secrets were registered: the scan would prove nothing"
    assert addressless, "no service log line was scanned for addresses"
    print(f"scanned {len(files)} log files, {scanned} bytes, for {len(secrets)} secrets")
