"""Log collection for the privacy scan (tests/integration/test_security_zz_logs.py).

After each integration test's call phase, before its fixtures tear down and
perhaps delete their scratch folders, every ``*.log`` file under the suite's
scratch folders (``/tmp/wellsense-*``) and pytest's temporary folders is
copied (new bytes only) into one archive folder, and the test's captured
stdout, stderr and log records are appended there too. Secrets are gathered
on the way from fixture values that carry a ``password`` or ``token``. The
scan test runs last and reads the archive.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import security_stack

ARCHIVE = Path(tempfile.mkdtemp(prefix="wellsense-logscan-"))
# Only this session's scratch folders: stale ones from earlier runs are not ours.
SESSION_START = ARCHIVE.stat().st_ctime - 5
SCAN_TEST = "test_security_zz_logs.py"
_offsets: dict[Path, int] = {}
_MAX_DEPTH = 4
_SKIP_DIRS = frozenset({"venv", ".venv", "site-packages", "engine", "lib", "opt", "pki", "data"})


def _roots(config: pytest.Config) -> list[Path]:
    roots = [
        p
        for p in Path(tempfile.gettempdir()).glob("wellsense-*")
        if p != ARCHIVE and p.stat().st_ctime >= SESSION_START
    ]
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        roots.append(factory.getbasetemp())
    return roots


def _log_files(root: Path) -> Iterator[Path]:
    base = len(root.parts)
    for directory, dirs, files in os.walk(root):
        depth = len(Path(directory).parts) - base
        dirs[:] = [] if depth >= _MAX_DEPTH else [d for d in dirs if d not in _SKIP_DIRS]
        for name in files:
            if name.endswith(".log"):
                yield Path(directory) / name


def _sweep(config: pytest.Config) -> None:
    for root in _roots(config):
        for path in _log_files(root):
            try:
                with path.open("rb") as f:
                    f.seek(_offsets.get(path, 0))
                    chunk = f.read()
            except OSError:
                continue
            if chunk:
                _offsets[path] = _offsets.get(path, 0) + len(chunk)
                name = "_".join(path.parts[-3:])
                with (ARCHIVE / f"{name}.txt").open("ab") as out:
                    out.write(chunk)


def _harvest_secrets(item: pytest.Item) -> None:
    for value in getattr(item, "funcargs", {}).values():
        for attr in ("password", "token"):
            secret = getattr(value, attr, None)
            if isinstance(secret, str) and len(secret) >= 8:
                security_stack.SECRETS.add(secret)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    if item.path.name != SCAN_TEST:
        _harvest_secrets(item)
        _sweep(item.config)
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.sections and SCAN_TEST not in report.nodeid:
        with (ARCHIVE / "captured-output.txt").open("a") as out:
            for title, text in report.sections:
                out.write(f"--- {report.nodeid} {title}\n{text}\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The scan must see every other test's logs: run it last.
    items.sort(key=lambda item: item.path.name == SCAN_TEST)


def pytest_sessionfinish() -> None:
    shutil.rmtree(ARCHIVE, ignore_errors=True)
    for directory in security_stack.SCRATCH:
        shutil.rmtree(directory, ignore_errors=True)
