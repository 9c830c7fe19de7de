"""Golden wire messages shared by the collector and processing tests."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parent


def valid_messages() -> dict[str, bytes]:
    """Valid example messages by name (``hr``, ``activity``, ...)."""
    return {p.stem: p.read_bytes().strip() for p in sorted((GOLDEN_DIR / "valid").glob("*.json"))}


def invalid_cases() -> list[dict[str, Any]]:
    """Malformed messages with the error class and field each must raise."""
    with (GOLDEN_DIR / "invalid" / "cases.toml").open("rb") as f:
        cases: list[dict[str, Any]] = tomllib.load(f)["case"]
    return cases
