"""Erasure with messages still queued: nothing of the participant is written back.

Real Mosquitto, real InfluxDB, the real processing service. Processing is
stopped (its persistent session keeps queuing at the broker, as during an
InfluxDB outage), more of the participant's messages arrive, the
participant is erased (tombstone, then the InfluxDB delete over all time),
and processing comes back and receives the queued messages: they are
discarded and confirmed to the gateway, and 0 points remain, in every time
range, while the other participant's data flows on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector import stored, wire
from processing import tombstones
from processing.admin import participant
from processing.admin import settings as admin_settings
from processing.admin.influxapi import InfluxApi
from tests.integration.processing_fixture import (
    T0_NS,
    Collector,
    Pipeline,
    hr_messages,
    pipeline,  # noqa: F401
    publish_messages,
    wait_until,
)
from tests.integration.security_stack import write_admin_toml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GONE, KEEP = "p-gone0001", "p-keep0001"


def _admin(pipe: Pipeline, tmp_path: Path) -> admin_settings.AdminConfig:
    token = tmp_path / "erasure-token"
    token.write_text(pipe.influx.token)
    token.chmod(0o600)
    path = write_admin_toml(
        tmp_path,
        port=1,
        influx_url=pipe.influx.url,
        org=pipe.influx.org,
        bucket=pipe.bucket,
        token_file=token,
    )
    pipe.new_bucket(f"{pipe.bucket}_1h")
    return admin_settings.load(path)


def test_queued_messages_of_an_erased_participant_are_discarded_not_written_back(
    pipeline: Pipeline,  # noqa: F811
    tmp_path: Path,
) -> None:
    pipe = pipeline
    admin = _admin(pipe, tmp_path)
    erased_file = admin.erasure.tombstones_file
    service_section = {"erased_file": str(erased_file)}
    api = InfluxApi(pipe.influx.url, pipe.influx.token)

    def points(who: str) -> int:
        return sum(participant.count_points(api, pipe.influx.org, pipe.bucket, who).values())

    def messages(who: str, device: str, n: int, first: int) -> list[wire.Message]:
        return hr_messages(
            study=pipe.study,
            participant=who,
            device=device,
            n_messages=n,
            first_seq=first,
            start_ns=T0_NS + first * 5 * 10**9,  # 5 samples of 1 s per message
        )

    service = pipe.start(service=service_section)
    publish_messages(pipe.broker, messages(GONE, "d-gone", 10, 0) + messages(KEEP, "d-keep", 10, 0))
    wait_until(lambda: service.metrics.messages_written >= 20, 60, "the first 20 messages stored")
    assert pipe.stop(service) == 0
    kept_before = points(KEEP)
    kept_hr = participant.count_points(api, pipe.influx.org, pipe.bucket, KEEP)["hr"]

    # Queued at the broker while processing is away; a point dated 2150 (a wrong clock).
    publish_messages(
        pipe.broker, messages(GONE, "d-gone", 20, 10) + messages(KEEP, "d-keep", 5, 10)
    )
    future_ns = 5_680_281_600 * 10**9  # 2150-01-01
    api.write(
        pipe.influx.org,
        pipe.bucket,
        f"hr,study={pipe.study},participant={GONE},device=d-gone hr_bpm=60i,seq=0i {future_ns}",
    )
    assert points(GONE) > 0

    # The erasure's server side: the tombstone first, then InfluxDB over all time.
    assert tombstones.add(erased_file, pipe.study, GONE)
    assert GONE not in erased_file.read_text()  # hashed
    result = participant.erase_influx(admin, GONE, settle_s=0.2)
    assert result[pipe.bucket]["hr"]["before"] > 0
    assert all(c["after"] == 0 for c in result[pipe.bucket].values())

    confirmations = Collector(pipe.broker, wire.gateway_topic(pipe.study, "gw-test", "stored"))
    service = pipe.start(service=service_section)
    wait_until(
        lambda: service.metrics.erased_discarded >= 20 and points(KEEP) > kept_before,
        60,
        "the queued messages delivered to processing",
    )
    wait_until(lambda: not service._inbox.qsize(), 10, "processing idle")
    assert service.metrics.erased_discarded == 20
    assert points(GONE) == 0
    # Every time range, not only up to now.
    assert participant.count_points(api, pipe.influx.org, pipe.bucket, GONE) == {}
    kept_now = participant.count_points(api, pipe.influx.org, pipe.bucket, KEEP)["hr"]
    assert kept_now == kept_hr * 15 // 10  # 5 more messages like the first 10

    # Discarded messages are confirmed, so the gateway deletes them from its outbox.
    def confirmed_gone() -> set[int]:
        seqs: set[int] = set()
        for payload in list(confirmations.payloads.queue):
            for entry in stored.decode(payload):
                if entry.device == "d-gone":
                    seqs |= {s for lo, hi in entry.stored for s in range(lo, hi + 1)}
        return seqs

    wait_until(lambda: set(range(10, 30)) <= confirmed_gone(), 20, "confirmations of discards")
    confirmations.close()
    assert pipe.stop(service) == 0
