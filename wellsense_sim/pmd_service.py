"""The PMD control point of an emulated Polar sensor: requests in, responses out.

Pure bytes, no bus: the emulator (and unit tests, through an in-memory
GATT link) feed it the octets a client writes and send back the indication
it returns. Layouts are those :mod:`collector.pmd` decodes (from Polar's
public BLE SDK), written independently here so each side checks the other:

* read value: ``0F | feature bit field`` (bit ``k`` = measurement type ``k``)
* response: ``F0 | op code | type | status | more (0) | parameters``;
  settings query -> offered settings TLV (``type | count | values``),
  start -> the factor (``05 01 | float32``).

Bad requests get the error codes a sensor answers with: unknown op code
(1), type not offered (2), wrong length (4), malformed settings (5), start
while running (6), a resolution / sample rate / range not offered (7/8/9),
stop while stopped (12). Standard library only.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ACC", "PPI", "PmdOffer", "PmdServiceModel", "polar_h10_offer", "verity_sense_offer"]

ACC = 2
PPI = 3

_SUCCESS, _INVALID_OP, _INVALID_TYPE, _INVALID_LENGTH, _INVALID_PARAMETER = 0, 1, 2, 4, 5
_ALREADY, _INVALID_RES, _INVALID_RATE, _INVALID_RANGE, _INVALID_STATE = 6, 7, 8, 9, 12
_SAMPLE_RATE, _RESOLUTION, _RANGE, _FACTOR = 0, 1, 2, 5
_SETTING_ERROR = {_SAMPLE_RATE: _INVALID_RATE, _RESOLUTION: _INVALID_RES, _RANGE: _INVALID_RANGE}


@dataclass(frozen=True, slots=True)
class PmdOffer:
    """What one measurement type offers: setting type -> allowed u16 values,
    and the factor its start response carries (``None``: no factor sent)."""

    settings: Mapping[int, tuple[int, ...]]
    factor: float | None


def polar_h10_offer() -> dict[int, PmdOffer]:
    """Polar H10: ACC 25-200 Hz, 16 bits, +-2/4/8 g; raw units milli-g (factor 1)."""
    return {
        ACC: PmdOffer(
            {_SAMPLE_RATE: (25, 50, 100, 200), _RESOLUTION: (16,), _RANGE: (2, 4, 8)}, 1.0
        )
    }


def verity_sense_offer() -> dict[int, PmdOffer]:
    """Polar Verity Sense: ACC 52 Hz, 16 bits, +-8 g, factor 8000/32768 mg per
    unit (a full-scale int16 is 8 g); PPI without settings."""
    return {
        ACC: PmdOffer({_SAMPLE_RATE: (52,), _RESOLUTION: (16,), _RANGE: (8,)}, 8000 / 32768),
        PPI: PmdOffer({}, None),
    }


@dataclass
class PmdServiceModel:
    """Control point state of one sensor: offered types and running streams."""

    offers: dict[int, PmdOffer]
    running: dict[int, dict[int, int]] = field(default_factory=dict)  # type -> chosen settings

    def feature_value(self) -> bytes:
        """The control point's read value."""
        bits = 0
        for kind in self.offers:
            bits |= 1 << kind
        return bytes([0x0F]) + bits.to_bytes(2, "little")

    def handle(self, request: bytes) -> bytes:
        """The indication answering a control point write."""
        if len(request) < 2:
            op = request[0] if request else 0
            return bytes([0xF0, op, 0, _INVALID_LENGTH, 0])
        op, kind = request[0], request[1] & 0x3F
        if op not in (1, 2, 3):
            return self._answer(op, kind, _INVALID_OP)
        offer = self.offers.get(kind)
        if offer is None:
            return self._answer(op, kind, _INVALID_TYPE)
        if op == 1:
            if len(request) != 2:
                return self._answer(op, kind, _INVALID_LENGTH)
            tlv = b"".join(
                bytes([setting, len(values)]) + b"".join(v.to_bytes(2, "little") for v in values)
                for setting, values in sorted(offer.settings.items())
            )
            return self._answer(op, kind, _SUCCESS, tlv)
        if op == 3:
            if len(request) != 2:
                return self._answer(op, kind, _INVALID_LENGTH)
            if self.running.pop(kind, None) is None:
                return self._answer(op, kind, _INVALID_STATE)
            return self._answer(op, kind, _SUCCESS)
        if kind in self.running:
            return self._answer(op, kind, _ALREADY)
        chosen = _parse_tlv(request[2:])
        if chosen is None:
            return self._answer(op, kind, _INVALID_PARAMETER)
        for setting, allowed in offer.settings.items():
            value = chosen.get(setting)
            if value is None or value not in allowed:
                return self._answer(op, kind, _SETTING_ERROR.get(setting, _INVALID_PARAMETER))
        if set(chosen) - set(offer.settings):
            return self._answer(op, kind, _INVALID_PARAMETER)
        self.running[kind] = chosen
        params = (
            b"" if offer.factor is None else bytes([_FACTOR, 1]) + struct.pack("<f", offer.factor)
        )
        return self._answer(op, kind, _SUCCESS, params)

    def stop_all(self) -> None:
        """The link dropped: a sensor ends its streams."""
        self.running.clear()

    @staticmethod
    def _answer(op: int, kind: int, status: int, params: bytes = b"") -> bytes:
        return bytes([0xF0, op, kind, status, 0]) + params


def _parse_tlv(data: bytes) -> dict[int, int] | None:
    """``type | count (1) | u16`` triples; None when malformed."""
    out: dict[int, int] = {}
    i = 0
    while i < len(data):
        if i + 4 > len(data) or data[i + 1] != 1 or data[i] in out:
            return None
        out[data[i]] = int.from_bytes(data[i + 2 : i + 4], "little")
        i += 4
    return out
