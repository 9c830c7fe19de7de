"""The shipped ``deploy/`` and ``rules/`` folders, in a checkout and in an installed wheel.

In the source tree ``wellsense_resources/deploy`` and ``wellsense_resources/rules``
are symbolic links to the repository's top-level folders; the wheel carries
copies of them (``package-data`` in pyproject.toml). Either way they are found
through :mod:`importlib.resources`, so ``wellsense broker init``, ``wellsense
demo`` and ``wellsense rules check`` work from any working directory.
Standard library only.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["ResourceError", "deploy_dir", "rules_dir"]


class ResourceError(RuntimeError):
    """A shipped folder is missing: a broken install or a wrong override."""


def deploy_dir() -> Path:
    """``deploy/``: templates, samples, systemd units, dashboards ($WELLSENSE_DEPLOY_DIR wins)."""
    return _folder("deploy", "WELLSENSE_DEPLOY_DIR")


def rules_dir() -> Path:
    """``rules/``: the default alert rule set."""
    return _folder("rules", None)


def _folder(name: str, override_var: str | None) -> Path:
    override = os.environ.get(override_var) if override_var else None
    if override_var and override:
        if not Path(override).is_dir():
            raise ResourceError(f"${override_var} = {override} is not a directory")
        return Path(override)
    shipped = files(__name__) / name
    # Installed from a wheel or run from a checkout the package is a plain
    # directory, so the resource is a real path that subprocesses can read.
    if not isinstance(shipped, Path) or not shipped.is_dir():
        raise ResourceError(
            f"the shipped {name}/ folder is missing from {shipped}; reinstall WellSense"
            + (f" or set ${override_var}" if override_var else "")
        )
    return shipped
