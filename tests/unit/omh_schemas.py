"""Validators for the official Open mHealth JSON schemas in the shared data.

The schemas (``openmhealth/schemas``, see the folder's SOURCE.md) use draft-04
and relative ``$ref``s such as ``header-1.x.json``; every reference resolves
to a file of the same folder, never to the network. In that copy a ``*-1.x.json``
file holds only the name of the version it stands for (a symbolic link in the
upstream repository), which is followed here.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.unit.features_data import require

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed (dev extra)")
referencing = pytest.importorskip("referencing", reason="referencing not installed (dev extra)")

BASE = "file:///omh-schemas/"
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def schema_dir() -> Path:
    return require("openmhealth") / "omh-schemas"


def _load(folder: Path, name: str) -> dict[str, Any]:
    for _ in range(4):  # a 1.x file names its target; follow a few hops at most
        text = (folder / name).read_text(encoding="utf-8").strip()
        if text.startswith("{"):
            loaded: dict[str, Any] = json.loads(text)
            return loaded
        name = text
    raise ValueError(f"{name}: not a schema")


def _date_time(value: object) -> bool:
    """RFC 3339 section 5.6 date-time, checked strictly (jsonschema's own needs a plug-in)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(re.sub(r"\.\d+", "", value).replace("Z", "+00:00"))  # ranges
    return True


def check_data_point(point: dict[str, Any]) -> None:
    """Validate a data point (data-point 1.0, header 1.x) and its body against
    the schema its header names; raises ``jsonschema.ValidationError``."""
    validator("data-point-1.0.json").validate(point)
    sid = point["header"]["schema_id"]
    assert sid["namespace"] == "omh"
    body_schema = f"{sid['name']}-{sid['version']}.json"
    assert (schema_dir() / body_schema).exists(), f"no official schema {body_schema}"
    validator(body_schema).validate(point["body"])


@functools.cache
def validator(schema_file: str) -> Any:
    """A draft-04 validator of ``schema_file`` with refs resolved in the shared folder."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    folder = schema_dir()

    def retrieve(uri: str) -> Resource[Any]:
        if not uri.startswith(BASE):
            raise LookupError(f"no network: {uri}")
        return Resource.from_contents(_load(folder, uri[len(BASE) :]), default_specification=DRAFT4)

    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    schema = {"$ref": BASE + schema_file}
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_date_time)
    return jsonschema.Draft4Validator(schema, registry=registry, format_checker=checker)
