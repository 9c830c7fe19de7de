"""``wellsense rules check|test``, the history reader, topics and line protocol of alerts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from collector import wire
from processing.rules import cli
from processing.rules.engine import NS, AlertEvent, Subject
from processing.rules.history import HistoryError, read_history, replay
from processing.rules.loader import load_rules
from processing.rules.runner import clock_from_env
from processing.rules.sinks import alert_line, state_topic

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv, prog="wellsense rules")
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- check


def test_check_default_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check", str(RULES)], capsys)
    assert code == 0
    assert out.strip() == "8 rules in 3 files: 0 errors, 0 warnings"


def test_check_reports_every_problem_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.toml").write_text(
        "[[rule]]\n"
        'id = "a"\n'
        'description = "d"\n'
        'scope = "device"\n'
        'condition = "battery_pct < -5"\n'
        'severity = "info"\n'
        'cooldown = "1h"\n'
        'notify = ["team"]\n'
        "\n[[rule]]\n"
        'id = "b"\n'
        'description = "d"\n'
        'scope = "participant"\n'
        'condition = "wear_hourz_24h < 10"\n'
        'severity = "info"\n'
        'cooldown = "1h"\n'
        'notify = ["team"]\n'
    )
    code, out, _ = run(["check", str(tmp_path)], capsys)
    assert code == 1
    assert f"{tmp_path / 'a.toml'}:5:26: error: impossible threshold" in out
    assert (
        f"{tmp_path / 'a.toml'}:14:14: error: unknown feature or variable 'wear_hourz_24h'" in out
    )
    assert "did you mean 'wear_hours_24h'?" in out
    assert out.strip().endswith("0 rules in 1 files: 2 errors, 0 warnings")


def test_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check", str(tmp_path / "nope")], capsys)[0] == 2
    assert run(["check", str(tmp_path)], capsys)[0] == 2  # no rule files
    assert run(["check", "--bogus"], capsys)[0] == 2
    assert run([], capsys)[0] == 2
    (tmp_path / "w.toml").write_text(
        (RULES / "adherence.toml").read_text().replace("battery_pct < 15", "battery_pct <= 100")
    )
    code, out, _ = run(["check", str(tmp_path)], capsys)
    assert code == 0 and "1 warnings" in out and "always true" in out
    assert run(["check", "--strict", str(tmp_path)], capsys)[0] == 1


# --------------------------------------------------------------------------- test


def history_csv(path: Path) -> Path:
    """Two days of a participant: data stops for 7 h, battery drops, RMSSD falls."""
    rows = []
    for hour in range(0, 24):
        t = f"2025-11-26T{hour:02d}:00:00Z"
        last = "2025-11-26T08:00:00Z" if 8 <= hour < 16 else t  # no data 08:00-16:00
        rows.append(
            {
                "time": t,
                "participant": "p-0001",
                "device": "strap-1",
                "last_sample": last,
                "last_worn": last,
                "wear_hours_24h": "16",
                "battery_pct": "9" if hour == 20 else "60",
            }
        )
    for k, z in enumerate(["-0.5", "-2.5", "-2.4", "-3.1", "0.2"]):
        rows.append(
            {"time": f"2025-11-{20 + k:02d}", "participant": "p-0001", "ln_rmssd_night_z": z}
        )
    rows.append(
        {
            "time": "2025-11-26T12:00:00Z",
            "gateway": "gw-1",
            "gateway_seen": "2025-11-26T11:00:00Z",
            "gateway_online": "false",
        }
    )
    columns = sorted({k for r in rows for k in r})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


EXPECTED = [
    ("2025-11-24T00:00:00Z", "baseline-rmssd-low", "firing", "p-0001"),
    ("2025-11-25T00:00:00Z", "baseline-rmssd-low", "resolved", "p-0001"),
    ("2025-11-26T12:00:00Z", "adherence-gateway-offline", "firing", "_gateways/gw-1"),
    ("2025-11-26T14:15:00Z", "adherence-no-data", "firing", "p-0001"),
    ("2025-11-26T16:00:00Z", "adherence-no-data", "resolved", "p-0001"),
    ("2025-11-26T20:00:00Z", "adherence-battery-low", "firing", "p-0001/strap-1"),
    ("2025-11-26T21:00:00Z", "adherence-battery-low", "resolved", "p-0001/strap-1"),
]


def test_test_table_json_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hist = history_csv(tmp_path / "h.csv")
    code, out, err = run(["test", str(RULES), "--history", str(hist), "--format", "json"], capsys)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]  # JSON Lines
    got = [(e["time"], e["rule"], e["state"], e.get("participant") or "") for e in events]
    assert [(t, r, s) for t, r, s, _ in got] == [(t, r, s) for t, r, s, _ in EXPECTED]
    code, out, _ = run(["test", str(RULES), "--history", str(hist), "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["time"], r["rule"], r["state"], r["subject"]) for r in rows] == EXPECTED
    code, out, _ = run(["test", str(RULES), "--history", str(hist)], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "RULE", "STATE", "SEVERITY", "SUBJECT", "VALUE", "SINCE"]
    assert lines[-1] == "4 fired, 3 resolved"
    assert "adherence-no-data" in lines[4] and "2025-11-26T14:15:00Z" in lines[4]


def test_test_json_history_and_tick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hist = tmp_path / "h.json"
    hist.write_text(
        json.dumps(
            {
                "records": [
                    {
                        "time": "2025-11-26T00:00:00Z",
                        "participant": "p-1",
                        "minutes_since_last_sample": 0,
                    },
                    {
                        "time": "2025-11-27T00:00:00Z",
                        "participant": "p-1",
                        "minutes_since_last_sample": 1440,
                    },
                ]
            }
        )
    )
    code, out, _ = run(
        ["test", str(RULES), "--history", str(hist), "--format", "json", "--tick", "1h"], capsys
    )
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]  # JSON Lines
    # hourly ticks: 360 min passed at 06:00, '> 360' first true at 07:00
    assert [(e["time"], e["state"]) for e in events] == [("2025-11-26T07:00:00Z", "firing")]


def test_test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hist = history_csv(tmp_path / "h.csv")
    bad_rules = tmp_path / "bad"
    bad_rules.mkdir()
    (bad_rules / "x.toml").write_text("[[rule]]\nid = 'x'\n")
    code, _, err = run(["test", str(bad_rules), "--history", str(hist)], capsys)
    assert code == 1 and "nothing was run" in err
    bad_hist = tmp_path / "bad.csv"
    bad_hist.write_text("time,participant,rmssd_msz\n2025-11-20,p-1,1\n")
    code, _, err = run(["test", str(RULES), "--history", str(bad_hist)], capsys)
    assert code == 2 and "bad.csv:2: unknown daily feature column 'rmssd_msz'" in err
    assert run(["test", str(RULES), "--history", str(hist), "--tick", "soon"], capsys)[0] == 2
    assert run(["test", str(RULES)], capsys)[0] == 2  # --history is required


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,participant\n,p-1\n", "no 'time'"),
        (
            "time,participant,battery_pct\n2025-11-26T00:00:00Z,p-1,5\n",
            "needs a participant and a device",
        ),
        ("time,gateway_online\n2025-11-26T00:00:00Z,true\n", "needs a gateway"),
        ("time,participant,wear_hours_24h\n2025-11-26T00:00:00Z,p-1,lots\n", "expected a number"),
        ("time,participant,last_sample\n2025-11-26T00:00:00Z,p-1,yesterday\n", "ISO 8601"),
        ("time,participant,kind\n2025-11-26T00:00:00Z,p-1,weekly\n", "kind 'weekly'"),
        ("time,participant,kind,rmssd_ms_z\n2025-11-26T03:00:00Z,p-1,daily,1\n", "is a date"),
        ("time,participant,colour\n2025-11-26T00:00:00Z,p-1,red\n", "unknown status column"),
    ],
)
def test_history_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(content)
    with pytest.raises(HistoryError, match=message):
        read_history(path)


def test_replay_is_deterministic(tmp_path: Path) -> None:
    hist = read_history(history_csv(tmp_path / "h.csv"))
    rules = load_rules(RULES)
    assert replay(rules, hist) == replay(rules, hist)


# --------------------------------------------------------------------------- sinks


def _matches(topic_filter: str, topic: str) -> bool:
    f, t = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


def test_alert_topics_fit_the_wire_contract_and_stay_out_of_processing() -> None:
    study = "pilot"
    events = wire.alerts_topic(study)
    p_state = state_topic(study, Subject.of_participant("p-0001"))
    g_state = state_topic(study, Subject.of_gateway("gw-1"))
    assert events == "wellsense/v1/pilot/_alerts"
    assert p_state == "wellsense/v1/pilot/_alerts/p-0001/state"
    assert g_state == "wellsense/v1/pilot/_alerts/_gateways/gw-1/state"
    # what the processing service subscribes to (processing.config.topic_filters)
    root = f"{wire.TOPIC_ROOT}/{study}"
    processing = [f"{root}/+/+", f"{root}/_gateways/+/health", f"{root}/_gateways/+/state"]
    for topic in (events, p_state, g_state):
        assert not any(_matches(f, topic) for f in processing), topic
        with pytest.raises(wire.TopicError):
            wire.parse_topic(topic)
    # the shape the issue sketched would be picked up (and dead-lettered) by processing
    assert _matches(processing[0], f"{events}/p-0001")
    # one subscription sees events and states
    assert all(_matches(f"{events}/#", t) for t in (events, p_state, g_state))
    with pytest.raises(wire.WireError):
        state_topic(study, Subject.of_participant("+"))


def test_alert_line() -> None:
    event = AlertEvent(
        study="pilot",
        rule="adherence-battery-low",
        state="firing",
        severity="info",
        subject=Subject.of_device("p-0001", "strap-1"),
        ts_ns=1_764_115_200 * NS,
        since_ns=1_764_115_200 * NS,
        value=9.0,
        message='battery "low"',
    )
    assert alert_line(event) == (
        "alert,device=strap-1,participant=p-0001,rule=adherence-battery-low,severity=info,"
        'study=pilot state="firing",value=9.0,message="battery \\"low\\"" 1764115200000000000'
    )
    gw = AlertEvent(
        "pilot", "r", "resolved", "warning", Subject.of_gateway("gw-1"), 5, 1, None, "m"
    )
    assert (
        alert_line(gw)
        == 'alert,gateway=gw-1,rule=r,severity=warning,study=pilot state="resolved",message="m" 5'
    )


def test_sim_clock_from_env() -> None:
    assert clock_from_env({}) is not None
    clock = clock_from_env(
        {
            "WELLSENSE_SIM_EPOCH_NS": str(10**18),
            "WELLSENSE_SIM_TIME_SCALE": "60",
            "WELLSENSE_SIM_ANCHOR_NS": str(10**18),
        }
    )
    a = clock()
    assert a > 10**18  # the wall clock is past 2001, scaled by 60


def test_docs_describe_every_engine_variable() -> None:
    from processing.rules.vocabulary import DERIVED_DAILY, STATUS

    docs = (REPO / "docs" / "rules.md").read_text()
    for var in (*STATUS, *DERIVED_DAILY):
        assert f"`{var.name}`" in docs, var.name
    readme = (REPO / "rules" / "README.md").read_text()
    for rule in load_rules(RULES):
        assert f"`{rule.id}`" in readme and rule.condition_text in readme, rule.id
