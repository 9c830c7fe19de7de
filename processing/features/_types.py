"""Array type aliases shared by the feature modules."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

NAN = float("nan")


def as_float_array(values: object) -> FloatArray:
    """Return a 1-D float64 copy of ``values`` (scalars become length-1 arrays)."""
    return np.array(values, dtype=np.float64, copy=True).reshape(-1)
