"""Write constraints.txt: the exact version of every package WellSense's extras install.

    .venv/bin/python tools/constraints.py > constraints.txt      (what `make constraints` runs)

Walks the requirements of every extra in pyproject.toml, and theirs in turn,
through the distributions installed in the running interpreter's environment,
and prints ``name==version`` for each. So the pins are exactly what the
development venv was tested with, and a package installed by hand that no extra
asks for is left out. Markers are evaluated for this interpreter and platform.
Needs ``packaging`` (a pytest dependency, so it is in every dev venv).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "wellsense"
HEADER = """\
# Exact versions of every package that WellSense's extras install (and of
# their dependencies), as tested together. Generated from the development
# venv by `make constraints` (tools/constraints.py): regenerate it after
# changing the extras in pyproject.toml, never edit it by hand.
# Used by `make venv`/`make test`, deploy/gateway/install.sh,
# deploy/server/setup-server.sh and the wheel tests:
#     pip install -c constraints.txt 'wellsense[gateway]'
"""


def pins(pyproject: Path) -> dict[str, str]:
    """Canonical name -> installed version, for the closure of every extra."""
    extras: dict[str, list[str]] = tomllib.loads(pyproject.read_text())["project"][
        "optional-dependencies"
    ]
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(r), frozenset[str]()) for reqs in extras.values() for r in reqs]
    while todo:
        req, parent_extras = todo.pop()
        if req.marker and not any(
            req.marker.evaluate({"extra": e}) for e in (parent_extras or {""})
        ):
            continue
        name = canonicalize_name(req.name)
        if name == PROJECT:  # a self-reference: its extras are roots already
            continue
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(
                f"constraints: {req.name} is not installed in {sys.prefix}; "
                "run `pip install -e '.[dev]'` in it first"
            ) from None
        if not req.specifier.contains(dist.version, prereleases=True):
            raise SystemExit(f"constraints: {name} {dist.version} does not satisfy {req}")
        found[name] = dist.version
        todo += [(Requirement(r), frozenset(req.extras)) for r in dist.requires or ()]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "pyproject",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "pyproject.toml",
    )
    args = parser.parse_args(argv)
    pinned = pins(args.pyproject)
    sys.stdout.write(HEADER + "".join(f"{n}=={v}\n" for n, v in sorted(pinned.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
