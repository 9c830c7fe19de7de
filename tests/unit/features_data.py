"""Locating the shared real data sets for feature tests (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data() -> Path:
    env = os.environ.get("WELLSENSE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def require(sub: str) -> Path:
    """Path of a shared data folder, or skip the test with the reason."""
    path = shared_data() / sub
    if not path.exists():
        pytest.skip(f"real data not available: {path} (set WELLSENSE_SHARED_DATA)")
    return path
