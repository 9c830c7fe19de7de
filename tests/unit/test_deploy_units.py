"""The systemd units keep the services running: no start limit on the gateway."""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _unit(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(REPO / path)
    return parser


def test_the_collector_keeps_restarting_for_ever() -> None:
    unit = _unit("deploy/gateway/wellsense-collector.service")
    # StartLimitIntervalSec=0 disables the start rate limit: after 10 failed
    # starts in 600 s (the old limit) systemd would leave the gateway stopped.
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert "StartLimitBurst" not in unit["Unit"]
    assert unit["Service"]["Restart"] == "always"
    assert 5 <= int(unit["Service"]["RestartSec"]) <= 60
    # Debian 12's systemd (252) does not know these (254+): they must not be relied on.
    assert "RestartSteps" not in unit["Service"] and "RestartMaxDelaySec" not in unit["Service"]
