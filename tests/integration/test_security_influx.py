"""Least-privilege InfluxDB tokens from `wellsense influx setup`, against the real InfluxDB 2.x."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from processing.admin import influxsetup, settings
from processing.admin.influxapi import InfluxApi, InfluxApiError
from processing.admin.influxguard import Guard
from processing.admin.participant import count_points
from tests.integration.harness import wait_until
from tests.integration.security_stack import SECRETS, write_admin_toml
from wellsense_cli.localservices import Influxd

pytestmark = pytest.mark.integration
ORG, BUCKET = "sec-influx", "sec"
NOW_NS = time.time_ns() // 10**9 * 10**9


@pytest.fixture(scope="module")
def stack(
    influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[settings.AdminConfig, influxsetup.SetupResult, dict[str, InfluxApi]]]:
    d = tmp_path_factory.mktemp("influx-setup")
    write_admin_toml(d, port=1, influx_url=influxd.url, org=ORG, bucket=BUCKET)
    config = settings.load(d / "admin.toml")
    first = influxsetup.setup(config, influxd.token, d / "secrets")
    again = influxsetup.setup(config, influxd.token, d / "secrets")
    assert again.bucket_ids == first.bucket_ids and again.task_id == first.task_id
    tokens = {role: path.read_text().strip() for role, path in first.token_files.items()}
    SECRETS.update(tokens.values())
    apis = {role: InfluxApi(influxd.url, token) for role, token in tokens.items()}
    apis["operator"] = InfluxApi(influxd.url, influxd.token)
    yield config, first, apis


def _refused(call: object) -> int:
    with pytest.raises(InfluxApiError) as info:
        call()  # type: ignore[operator]
    assert info.value.status in (401, 403, 404), info.value
    return info.value.status


def test_token_files_are_private_and_retention_follows_the_config(stack) -> None:  # type: ignore[no-untyped-def]
    _config, result, apis = stack
    for path in result.token_files.values():
        assert Path(path).stat().st_mode & 0o077 == 0
    bucket = apis["operator"].get(f"/api/v2/buckets/{result.bucket_ids[BUCKET]}")
    assert bucket["retentionRules"][0]["everySeconds"] == 30 * 86_400


def test_researcher_token_reads_but_cannot_write_or_delete(stack) -> None:  # type: ignore[no-untyped-def]
    _config, result, apis = stack
    apis["processing"].write(
        ORG, BUCKET, f"hr,study=sec,participant=p-r,device=d hr_bpm=60i {NOW_NS}"
    )
    rows = apis["researcher"].query(
        ORG,
        f'from(bucket: "{BUCKET}") |> range(start: -1h) '
        '|> filter(fn: (r) => r.participant == "p-r")',
    )
    assert [r["_value"] for r in rows] == ["60"]
    apis["researcher"].query(ORG, f'from(bucket: "{BUCKET}_1h") |> range(start: -1h)')
    _refused(lambda: apis["researcher"].write(ORG, BUCKET, f"hr,participant=x hr_bpm=1i {NOW_NS}"))
    _refused(lambda: apis["researcher"].write(ORG, f"{BUCKET}_1h", f"x v=1i {NOW_NS}"))
    _refused(
        lambda: apis["researcher"].delete_points(
            ORG, BUCKET, "1970-01-01T00:00:00Z", "2100-01-01T00:00:00Z", 'participant="p-r"'
        )
    )
    _refused(
        lambda: apis["researcher"].delete_resource(f"/api/v2/buckets/{result.bucket_ids[BUCKET]}")
    )


@pytest.fixture(scope="module")
def guard(stack) -> Iterator[InfluxApi]:  # type: ignore[no-untyped-def]
    """The write guard in front of InfluxDB, as processing reaches it in a deployment."""
    config, result, _apis = stack
    server = Guard(
        ("127.0.0.1", 0),
        influx_url=config.influx.url,
        org=ORG,
        bucket=BUCKET,
        influx_token=result.token_files["processing"].read_text().strip(),
        client_token=result.token_files["guard-client"].read_text().strip(),
    )
    SECRETS.add(server.client_token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield InfluxApi(f"http://127.0.0.1:{server.server_address[1]}", server.client_token)
    server.shutdown()
    server.server_close()


def test_processing_token_reads_and_writes_but_cannot_delete(stack, guard: InfluxApi) -> None:  # type: ignore[no-untyped-def]
    config, result, _apis = stack
    guard.write(ORG, BUCKET, f"hr,study=sec,participant=p-w,device=d hr_bpm=70i {NOW_NS}")
    query = (
        f'from(bucket: "{BUCKET}") |> range(start: -1h) '
        '|> filter(fn: (r) => r.participant == "p-w")'
    )
    assert guard.query(ORG, query)
    everything = ("1970-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
    # No deleting raw points, buckets, downsampled data, tokens, tasks or the org.
    _refused(lambda: guard.delete_points(ORG, BUCKET, *everything, 'participant="p-w"'))
    _refused(lambda: guard.delete_points(ORG, BUCKET, *everything, '_measurement="hr"'))
    _refused(lambda: guard.delete_points(ORG, BUCKET, *everything, '_measurement="daily"'))
    _refused(lambda: guard.delete_points(ORG, f"{BUCKET}_1h", *everything, 'participant="p-w"'))
    for resource in (
        f"buckets/{result.bucket_ids[BUCKET]}",
        f"buckets/{result.bucket_ids[BUCKET + '_1h']}",
        f"tasks/{result.task_id}",
        f"orgs/{result.org_id}",
    ):
        _refused(lambda r=resource: guard.delete_resource(f"/api/v2/{r}"))
    _refused(
        lambda: guard.post("/api/v2/authorizations", {"orgID": result.org_id, "permissions": []})
    )
    _refused(lambda: guard.post("/api/v2/buckets", {"orgID": result.org_id, "name": "extra"}))
    _refused(lambda: guard.write(ORG, f"{BUCKET}_1h", f"x v=1i {NOW_NS}"))
    assert guard.query(ORG, query), "the data survived every attempt"
    # The guard's credential is not an InfluxDB token at all.
    _refused(lambda: InfluxApi(config.influx.url, guard._token).query(ORG, query))


def test_processing_may_replace_a_single_feature_point(stack, guard: InfluxApi) -> None:  # type: ignore[no-untyped-def]
    ts = NOW_NS - 3600 * 10**9
    guard.write(ORG, BUCKET, f"daily,study=sec,participant=p-f,tz=UTC hr_mean=60 {ts}")
    start = datetime.fromtimestamp(ts / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    stop = datetime.fromtimestamp(ts / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000001Z")
    guard.delete_points(
        ORG, BUCKET, start, stop, '_measurement="daily" AND study="sec" AND participant="p-f"'
    )
    assert not guard.query(
        ORG,
        f'from(bucket: "{BUCKET}") |> range(start: -1d) '
        '|> filter(fn: (r) => r.participant == "p-f")',
    )


def test_downsampling_task_keeps_the_participant_tag(stack) -> None:  # type: ignore[no-untyped-def]
    _config, result, apis = stack
    op = apis["operator"]
    op.write(
        ORG,
        BUCKET,
        "\n".join(
            f"hr,study=sec,participant=p-d,device=d1 hr_bpm={60 + i}i {NOW_NS - i * 10**9}"
            for i in range(10)
        ),
    )
    op.post(f"/api/v2/tasks/{result.task_id}/runs", {})
    query = (
        f'from(bucket: "{BUCKET}_1h") |> range(start: -3d) '
        '|> filter(fn: (r) => r.participant == "p-d")'
    )
    wait_until(lambda: op.query(ORG, query), 30, "the downsampling task's output")
    fields = {r["_field"] for r in op.query(ORG, query)}
    assert {"hr_bpm_mean", "hr_bpm_min", "hr_bpm_max"} <= fields


def test_the_influxdb_client_library_works_through_the_guard(stack, guard: InfluxApi) -> None:  # type: ignore[no-untyped-def]
    """Processing uses influxdb-client: its write, query and delete calls pass the guard."""
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    ts = NOW_NS - 7200 * 10**9
    with InfluxDBClient(url=guard.url, token=guard._token, org=ORG) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            BUCKET, ORG, f"hrv_window,study=sec,participant=p-c,window=300s rmssd_ms=30 {ts}"
        )
        flux = (
            f'from(bucket: "{BUCKET}") |> range(start: -1d) '
            '|> filter(fn: (r) => r.participant == "p-c")'
        )
        assert len(client.query_api().query(flux)) == 1
        start = datetime.fromtimestamp(ts / 1e9, UTC)
        client.delete_api().delete(
            start,
            datetime.fromtimestamp(ts / 1e9 + 1e-6, UTC),
            '_measurement="hrv_window" AND participant="p-c"',
            bucket=BUCKET,
            org=ORG,
        )
        assert not client.query_api().query(flux)


# --------------------------------------------------------------------------- the guard, attacked


def _raw(guard: InfluxApi, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a hand-made HTTP request; return (status, response body)."""
    port = int(guard.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _points(api: InfluxApi, participant: str) -> dict[str, int]:
    return count_points(api, ORG, BUCKET, participant)


def _delete_raw(url: str, token: str, body: bytes) -> int:
    request = urllib.request.Request(
        f"{url}/api/v2/delete?org={ORG}&bucket={BUCKET}",
        data=body,
        method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _case_variant_bodies(ts_ns: int, participant: str) -> list[bytes]:
    """Bodies that look like a one-point feature delete to a case-sensitive reader."""
    start = datetime.fromtimestamp(ts_ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    stop = start.replace(".000000000Z", ".000000001Z")
    harmless = f'"start":"{start}","stop":"{stop}","predicate":"_measurement=\\"daily\\""'
    everything = '"1970-01-01T00:00:00Z"', '"2100-01-01T00:00:00Z"'
    return [
        (
            f'{{{harmless},"Predicate":"participant=\\"{participant}\\"",'
            f'"\u017ftart":{everything[0]},"\u017ftop":{everything[1]}}}'
        ).encode(),
        f'{{{harmless},"Predicate":"participant=\\"{participant}\\""}}'.encode(),
        f'{{{harmless},"PREDICATE":"participant=\\"{participant}\\""}}'.encode(),
        # long s (U+017F) folds to "s" in Go: a second start and stop
        (
            f'{{"predicate":"participant=\\"{participant}\\"",'
            f'"start":"{start}","stop":"{stop}",'
            f'"\u017ftart":{everything[0]},"\u017ftop":{everything[1]}}}'
        ).encode(),
        f'{{{harmless},"predicate":"participant=\\"{participant}\\""}}'.encode(),
    ]


def test_case_variant_delete_bodies_are_refused_and_delete_nothing(stack, guard: InfluxApi) -> None:  # type: ignore[no-untyped-def]
    config, result, apis = stack
    op = apis["operator"]
    lines = [
        f"{m},study=sec,participant={p},device=d hr_bpm={60 + i}i {NOW_NS - i * 10**9}"
        for p in ("p-cv", "p-demo")
        for m in ("hr", "daily")
        for i in range(20)
    ]
    op.write(ORG, BUCKET, "\n".join(lines))
    assert _points(op, "p-demo") == {"hr": 20, "daily": 20}
    # InfluxDB itself takes the last case-insensitive spelling: sent straight to
    # it with a write token, the "harmless" body deletes every point of p-demo.
    token = result.token_files["processing"].read_text().strip()
    first = _case_variant_bodies(NOW_NS, "p-demo")[0]
    assert _delete_raw(config.influx.url, token, first) == 204
    assert _points(op, "p-demo") == {}, "InfluxDB no longer folds JSON keys: update this test"
    # Through the guard, every such body is refused and nothing is deleted.
    before = _points(op, "p-cv")
    assert before == {"hr": 20, "daily": 20}
    for body in _case_variant_bodies(NOW_NS, "p-cv"):
        status = _delete_raw(guard.url, guard._token, body)
        assert status in (400, 403), (status, body)
    assert _points(op, "p-cv") == before


def test_flux_outside_the_rule_is_refused(stack, guard: InfluxApi) -> None:  # type: ignore[no-untyped-def]
    for flux in (
        'import "http"\nhttp.post(url: "http://127.0.0.1:9/", data: bytes(v: "x"))',
        'import "sql"\nsql.from(driverName: "sqlite3", dataSourceName: ":memory:", query: "x")',
        f'from(bucket: "{BUCKET}") |> range(start: -1h) |> to(bucket: "{BUCKET}_1h")',
        f'from(bucket: "{BUCKET}_1h") |> range(start: -1h)',
    ):
        assert _refused(lambda f=flux: guard.query(ORG, f)) == 403
    assert guard.query(ORG, f'from(bucket: "{BUCKET}") |> range(start: -1h) |> count()')


def test_a_large_body_without_a_token_is_refused_before_it_is_read(guard: InfluxApi) -> None:
    size = 63 * 1024 * 1024
    head = f"POST /api/v2/write?org={ORG}&bucket={BUCKET} HTTP/1.1\nHost: x\n"
    head += f"Content-Length: {size}\nAuthorization: Token wrong\n"
    # Only the headers and 64 KiB are sent: an answer proves the rest was never awaited.
    status, _ = _raw(guard, head, b"x" * 65536)
    assert status == 401
    status, _ = _raw(guard, head.replace("Token wrong", "Token "), b"x" * 65536)
    assert status == 401


def test_bad_content_lengths_and_chunked_bodies_are_refused(guard: InfluxApi) -> None:
    base = f"POST /api/v2/write?org={ORG}&bucket={BUCKET} HTTP/1.1\nHost: x\n"
    auth = f"Authorization: Token {guard._token}\n"
    assert _raw(guard, base + auth + "Content-Length: -1\n")[0] == 400
    assert _raw(guard, base + auth + "Content-Length: 1e3\n")[0] == 400
    assert _raw(guard, base + auth + "Content-Length: 99999999999\n")[0] == 413
    assert _raw(guard, base + auth)[0] == 411
    assert (
        _raw(guard, base + auth + "Transfer-Encoding: chunked\n", b"5\r\nhello\r\n0\r\n\r\n")[0]
        == 411
    )
    assert _raw(guard, base + auth + "Content-Length: 1\nContent-Length: 1\n", b"x")[0] == 411


def test_the_guard_refuses_to_start_with_an_empty_token_file(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, result, _apis = stack
    empty = tmp_path / "client-token"
    empty.write_text("\n")
    empty.chmod(0o600)
    args = [
        "--listen", "127.0.0.1:0", "--influx-url", config.influx.url,
        "--org", ORG, "--bucket", BUCKET,
        "--influx-token-file", str(result.token_files["processing"]),
        "--client-token-file", str(empty),
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "wellsense_cli.main", "influx", "guard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 2  # a configuration error: systemd does not restart it
    assert f"{empty} is empty; refusing to start without a token" in run.stderr
    with pytest.raises(ValueError, match="empty token"):
        Guard(
            ("127.0.0.1", 0),
            influx_url=config.influx.url,
            org=ORG,
            bucket=BUCKET,
            influx_token="x",
            client_token=" ",
        )
