"""Encoders for Polar PMD data frames, the inverse of ``collector.gatt.parse_pmd_frame``.

Used by tests and benches to produce frames as a sensor sends them; the
layout is documented in :func:`collector.gatt.parse_pmd_frame`. Standard
library only.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["delta_width", "encode_delta_frame", "encode_raw_acc_frame"]

_ACC = 2


def delta_width(deltas: Sequence[int]) -> int:
    """Fewest bits (>= 1) holding every delta as a two's-complement integer."""
    width = 1
    for d in deltas:
        while not -(1 << (width - 1)) <= d < (1 << (width - 1)):
            width += 1
    return width


def encode_delta_frame(
    sensor_ts_ns: int,
    samples: Sequence[Sequence[int]],
    *,
    measurement_type: int = _ACC,
    frame_type: int = 1,
    resolution_bits: int = 16,
    block_samples: int = 255,
) -> bytes:
    """A delta-compressed frame: reference sample, then blocks of at most
    ``block_samples`` deltas, each block with the narrowest width that fits."""
    if not samples:
        raise ValueError("a frame needs at least the reference sample")
    channels = len(samples[0])
    ref_octets = (resolution_bits + 7) // 8
    out = bytearray([measurement_type])
    out += sensor_ts_ns.to_bytes(8, "little")
    out.append(0x80 | frame_type)
    for value in samples[0]:
        out += (value & ((1 << (8 * ref_octets)) - 1)).to_bytes(ref_octets, "little")
    for start in range(1, len(samples), block_samples):
        chunk = range(start, min(start + block_samples, len(samples)))
        deltas = [samples[i][c] - samples[i - 1][c] for i in chunk for c in range(channels)]
        width = delta_width(deltas)
        bits = 0
        for k, d in enumerate(deltas):
            bits |= (d & ((1 << width) - 1)) << (k * width)
        out += bytes([width, len(chunk)])
        out += bits.to_bytes((width * len(deltas) + 7) // 8, "little")
    return bytes(out)


def encode_raw_acc_frame(sensor_ts_ns: int, samples_mg: Sequence[Sequence[int]]) -> bytes:
    """An uncompressed ACC frame of type 1 (int16 milli-g per axis)."""
    out = bytearray([_ACC]) + sensor_ts_ns.to_bytes(8, "little") + b"\x01"
    for xyz in samples_mg:
        for v in xyz:
            out += v.to_bytes(2, "little", signed=True)
    return bytes(out)
