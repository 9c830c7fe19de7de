"""The writer's error policy: each InfluxDB answer maps to one action.

The transport (`post`) is replaced by a script of responses: this tests the
policy only; the integration tests run the same writer against real InfluxDB.
"""

from __future__ import annotations

import random
import threading

import pytest

from processing.writer import (
    FatalWriteError,
    InfluxWriter,
    RejectedError,
    Response,
    StoppedError,
    backoff_s,
    parse_retry_after,
)


class ScriptedWriter(InfluxWriter):
    def __init__(self, responses: list[Response], **kwargs: object) -> None:
        super().__init__(
            url="http://127.0.0.1:1",
            org="o",
            bucket="b",
            token="secret-token",
            retry_base_s=0.001,
            retry_max_s=0.01,
            rng=random.Random(1),
            **kwargs,  # type: ignore[arg-type]
        )
        self.responses = responses
        self.bodies: list[bytes] = []
        self.delays: list[float] = []
        self.on_retry = lambda status, delay, msg: self.delays.append(delay)

    def post(self, body: bytes) -> Response:
        self.bodies.append(body)
        if callable(self.responses[0]):
            return self.responses[0](body)  # type: ignore[operator, no-any-return]
        return self.responses.pop(0)


OK = Response(204, None, "")


def test_transient_errors_are_retried_honouring_retry_after() -> None:
    w = ScriptedWriter(
        [Response(0, None, "refused"), Response(503, None, ""), Response(429, 0.02, ""), OK]
    )
    w.write(["m v=1 1"])
    assert len(w.bodies) == 4 and len(set(w.bodies)) == 1
    assert w.delays[2] == pytest.approx(0.02)  # exactly Retry-After
    assert w.counters.retries == 3 and w.counters.points == 1


def test_413_splits_until_it_fits() -> None:
    def small_only(body: bytes) -> Response:
        return OK if body.count(b"\n") < 2 else Response(413, None, "too large")

    w = ScriptedWriter([small_only])  # type: ignore[list-item]
    w.write([f"m v={i} {i}" for i in range(8)])
    assert w.counters.points == 8 and w.counters.splits >= 3
    assert w.counters.writes == 4  # 8 lines -> four bodies of two


@pytest.mark.parametrize(("status", "error"), [(400, RejectedError), (422, RejectedError)])
def test_rejected_data_is_raised_with_the_server_reason(status: int, error: type) -> None:
    w = ScriptedWriter([Response(status, None, "field type conflict")])
    with pytest.raises(error, match="field type conflict"):
        w.write(["m v=1 1"])


@pytest.mark.parametrize("status", [401, 403, 404])
def test_credentials_and_target_errors_are_fatal(status: int) -> None:
    w = ScriptedWriter([Response(status, None, "unauthorized")])
    with pytest.raises(FatalWriteError) as err:
        w.write(["m v=1 1"])
    assert err.value.status == status
    assert "secret-token" not in repr(w) + str(err.value)


def test_stop_interrupts_a_retry_loop() -> None:
    stop = threading.Event()
    stop.set()
    w = ScriptedWriter([Response(503, None, "")] * 5, stop=stop)
    with pytest.raises(StoppedError):
        w.write(["m v=1 1"])


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(0)
    values = [backoff_s(a, base_s=0.2, max_s=30, rng=rng) for a in range(12)]
    assert 0.1 <= values[0] <= 0.2 and all(15 <= v <= 30 for v in values[9:])
    assert parse_retry_after("7") == 7.0 and parse_retry_after("soon") is None
    assert parse_retry_after(None) is None and parse_retry_after("-1") is None
