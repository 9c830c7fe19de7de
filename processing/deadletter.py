"""Dead-letter records: what was wrong with a message, and enough of it to look into.

A dead letter is published (QoS 1) on ``wellsense/v1/<study>/_deadletter`` as
a JSON object::

    {"reason": "wrong_type", "field": "samples[0].hr_bpm",
     "error": "samples[0].hr_bpm: expected an integer, got float",
     "topic": "wellsense/v1/pilot/p-1/hr", "worker": "w1", "received_ns": ...,
     "payload_bytes": 1234, "payload_b64": "...", "payload_truncated": false}

``reason`` is a short code: the wire contract's (``bad_json``, ``too_large``,
``unknown_schema``, ``missing_field``, ``unknown_field``, ``wrong_type``,
``bad_value``, ``bad_topic``), the writer's (``influx_rejected``), or
``decoder_failed`` (a decoder raised something unexpected: a bug, never a
reason to stop ingestion).
The payload is kept only up to :data:`MAX_PAYLOAD_BYTES`, base64-encoded.
"""

from __future__ import annotations

import base64
import json
from typing import Final

MAX_PAYLOAD_BYTES: Final = 4096
INFLUX_REJECTED: Final = "influx_rejected"
DECODER_FAILED: Final = "decoder_failed"


def record(
    *,
    reason: str,
    field: str,
    error: str,
    topic: str,
    payload: bytes,
    worker: str,
    received_ns: int,
) -> bytes:
    """The dead-letter JSON for one message."""
    kept = payload[:MAX_PAYLOAD_BYTES]
    body = {
        "reason": reason,
        "field": field,
        "error": error[:500],
        "topic": topic[:300],
        "worker": worker,
        "received_ns": received_ns,
        "payload_bytes": len(payload),
        "payload_b64": base64.b64encode(kept).decode("ascii"),
        "payload_truncated": len(kept) < len(payload),
    }
    return json.dumps(body, separators=(",", ":")).encode()
