"""The guard's Flux rule and JSON bodies: what the services send passes, nothing else does.

The services' queries are not copied here: they are recorded by running the
real query builders (processing.featurejobs, processing.rules.influx_source)
against a recording query API, so a new query shape fails this test until
the rule in processing/admin/fluxguard.py allows it on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processing.admin import fluxguard
from processing.admin.influxguard import Refused, canonical_delete, canonical_query
from processing.featurejobs import FeatureJobs
from processing.rules.influx_source import InfluxSource
from processing.rules.loader import load_rules
from processing.windows import Unit

BUCKET = "wellsense"
NS = 10**9
T0 = 1_764_115_200 * NS


class Recorder:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def query_csv(self, flux: str, **_kw: Any) -> list[list[str]]:
        self.queries.append(flux)
        return []

    def query(self, flux: str, **_kw: Any) -> list[Any]:
        self.queries.append(flux)
        return []


def service_queries() -> list[str]:
    rec = Recorder()
    jobs = FeatureJobs(
        query_api=rec, org="o", bucket=BUCKET, study="pilot", window_s=300, timezone="UTC"
    )
    jobs.daily_inputs(Unit("daily", "p-1", T0, T0 + 86_400 * NS))
    jobs.recent(T0, T0 + 3600 * NS)
    jobs.fingerprint(Unit("hrv", "p-1", T0, T0 + 300 * NS))
    jobs.compute(Unit("hrv", "p-1", T0, T0 + 300 * NS))
    source = InfluxSource(
        query_api=rec, org="o", bucket=BUCKET, study="pilot", lookback_ns=35 * 86_400 * NS
    )
    rules = load_rules(Path(__file__).resolve().parents[2] / "rules")
    source.status(T0)
    source.daily(T0, list(rules.rules))
    source.stored_alerts(T0)
    return rec.queries


def test_every_query_the_services_send_is_allowed() -> None:
    queries = service_queries()
    assert len(queries) >= 12
    for flux in queries:
        fluxguard.check(flux, BUCKET)
        body = json.dumps({"query": flux, "type": "flux", "extern": {"imports": [], "body": []}})
        assert json.loads(canonical_query(body.encode(), BUCKET))["query"] == flux


REFUSED = [
    'import "http"\nhttp.post(url: "http://127.0.0.1:9/", data: bytes(v: "x"))',
    'import "experimental/http"\nfrom(bucket: "wellsense") |> range(start: -1h)',
    'import "sql"\nsql.from(driverName: "sqlite3", dataSourceName: "x", query: "select 1")',
    'import "socket"\nsocket.from(url: "tcp://127.0.0.1:9", decoder: "csv")',
    'import "influxdata/influxdb/secrets"\nsecrets.get(key: "k")',
    'from(bucket: "wellsense") |> range(start: -1h) |> to(bucket: "other")',
    'from(bucket: "other") |> range(start: -1h)',
    'from(bucketID: "0123456789abcdef") |> range(start: -1h)',
    'from(bucket: "wellsense", host: "http://evil:8086", token: "t") |> range(start: -1h)',
    'from(bucket: "wellsense" ) |> range(start: -1h) |> yield(name: "${string(v: 1)}")',
    't = to\nfrom(bucket: "wellsense") |> range(start: -1h) |> t(bucket: "x")',
    "buckets()",
    "sleep(v: x, duration: 1h)",
    'option now = () => 2020-01-01T00:00:00Z\nfrom(bucket: "wellsense") |> range(start: -1h)',
    'from(bucket: "wellsense") |> range(start: -1h) |> filter(fn: (r) => r._value =~ /x/)',
    '// import "http"\nimport "http"',
    'from(bucket: "wellsense") |> range(start: -1h) |> map(fn: (r) => ({r with x: to}))',
    'experimental.to(bucket: "x")',
    'from(bucket: "wellsense") |> range(start: -1h) |> map(fn: (to) => to)',
    'from(bucket: "wellsense") |> range(start: -1h) |> requests.get(url: "x")',
    'from(bucket: "wellsense") |> range(start: -1h) \u2028|> to(bucket: "x")',
    'from(bucket: "wellsense") |> map(fn: (r) => ({r with d: ["a": 1, to: 2]}))',
]


@pytest.mark.parametrize("flux", REFUSED, ids=range(len(REFUSED)))
def test_anything_else_is_refused(flux: str) -> None:
    with pytest.raises(fluxguard.FluxRefused):
        fluxguard.check(flux, BUCKET)
    with pytest.raises(Refused) as info:
        canonical_query(json.dumps({"query": flux}).encode(), BUCKET)
    assert info.value.status == 403


def test_comments_and_strings_cannot_hide_a_call() -> None:
    fluxguard.check(
        'from(bucket: "wellsense") // |> to(bucket: "x")\n |> range(start: -1h)', BUCKET
    )
    fluxguard.check(
        'from(bucket: "wellsense") |> range(start: -1h) |> filter(fn: (r) => r.x == "to(")', BUCKET
    )
    with pytest.raises(fluxguard.FluxRefused):  # an escaped quote does not end the string
        fluxguard.check(
            'from(bucket: "wellsense") |> filter(fn: (r) => r.x == "\\" ") |> to(bucket: "x") //")',
            BUCKET,
        )


def test_query_bodies_with_extra_or_case_variant_keys_are_refused() -> None:
    ok = 'from(bucket: "wellsense") |> range(start: -1h)'
    for body in (
        {"query": ok, "Query": 'import "http"'},
        {"query": ok, "QUERY": "x"},
        {"query": ok, "params": {}},
        {"query": ok, "extern": {"imports": [{"path": {"value": "http"}}], "body": []}},
        {"query": ok, "dialect": {"Header": True}},
        {"query": ok, "type": "influxql"},
    ):
        with pytest.raises(Refused):
            canonical_query(json.dumps(body).encode(), BUCKET)
    dup = b'{"query": "%s", "query": "buckets()"}' % ok.replace('"', '\\"').encode()
    with pytest.raises(Refused, match="duplicate"):
        canonical_query(dup, BUCKET)


ONE_POINT = {
    "start": "2026-11-26T00:00:00.000000000Z",
    "stop": "2026-11-26T00:00:00.000000001Z",
    "predicate": '_measurement="daily" AND study="sec" AND participant="p-f"',
}


def test_a_single_feature_point_delete_is_re_encoded() -> None:
    out = json.loads(canonical_delete(json.dumps(ONE_POINT).encode()))
    assert out == ONE_POINT
    offset = dict(ONE_POINT, start="2026-11-26T01:00:00+01:00", stop="2026-11-26T00:00:00.5Z")
    assert json.loads(canonical_delete(json.dumps(offset).encode()))["start"] == ONE_POINT["start"]


@pytest.mark.parametrize(
    "body",
    [
        # case variants and Unicode folding: Go would take the last spelling
        {**ONE_POINT, "Predicate": '_measurement="hr"'},
        {**ONE_POINT, "PREDICATE": ""},
        {**ONE_POINT, "\u017ftart": "1970-01-01T00:00:00Z"},
        {**ONE_POINT, "\u017ftop": "2100-01-01T00:00:00Z"},
        {**ONE_POINT, "STOP": "2100-01-01T00:00:00Z"},
        {**ONE_POINT, "\u212aind": "x"},  # Kelvin sign: folds to "k" in Go
        {**ONE_POINT, "bucket": "other"},
        # wrong shapes
        dict(ONE_POINT, predicate='_measurement="hr"'),
        dict(ONE_POINT, predicate=""),
        dict(ONE_POINT, predicate='_measurement="daily" OR participant="p-f"'),
        dict(ONE_POINT, predicate='_measurement="daily" AND _measurement="hr"'),
        dict(ONE_POINT, predicate='_measurement="daily" AND _field="x"'),
        dict(ONE_POINT, predicate='_measurement="daily" AND participant="a\\" OR x=\\"b"'),
        dict(ONE_POINT, stop="2026-11-26T00:00:02Z"),
        dict(ONE_POINT, stop="2025-11-26T00:00:00Z"),
        dict(ONE_POINT, start=0),
        {k: v for k, v in ONE_POINT.items() if k != "predicate"},
        [ONE_POINT],
    ],
)
def test_other_deletes_are_refused(body: object) -> None:
    with pytest.raises(Refused):
        canonical_delete(json.dumps(body).encode())


def test_duplicate_delete_keys_are_refused() -> None:
    text = json.dumps(ONE_POINT)[:-1] + ', "predicate": "_measurement=\\"hr\\""}'
    with pytest.raises(Refused, match="duplicate"):
        canonical_delete(text.encode())
    nested = b"[" * 100_000
    with pytest.raises(Refused):
        canonical_delete(nested)
