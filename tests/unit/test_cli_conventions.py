"""Every `wellsense` command against the README's table and wellsense_cli.conventions.

The commands come from the dispatcher (wellsense_cli/main.py); their parsers
are captured by interrupting ``parse_known_args``, so nothing is connected to
and nothing runs. No network, broker or database is used in this file.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from processing.research import _cli
from processing.research.flux import QueryError
from wellsense_cli import conventions as cv
from wellsense_cli.main import DEPRECATED, GROUPED, SUBCOMMANDS, commands, main

REPO = Path(__file__).resolve().parents[2]


class _Captured(Exception):
    pass


def _module(command: str) -> str:
    parts = command.split()
    if len(parts) == 2:
        return GROUPED[(parts[0], parts[1])].module
    return SUBCOMMANDS[command].module


def parser_of(command: str) -> argparse.ArgumentParser:
    """The top-level parser a command builds, captured before it parses anything."""
    box: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_known_args

    def capture(self: argparse.ArgumentParser, *a: object, **k: object) -> object:
        box.append(self)
        raise _Captured

    argparse.ArgumentParser.parse_known_args = capture  # type: ignore[assignment,method-assign]
    try:
        importlib.import_module(_module(command)).main([], prog=f"wellsense {command}")
    except _Captured:
        pass
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]
    assert box, f"{command} built no argparse parser"
    return box[0]


def walk(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) of a parser and all its subcommands."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")


def every_parser() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for command in commands():
        yield from walk(parser_of(command), command)


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse exits; some commands return the code instead
        return int(exc.code or 0)


# --- the README table ------------------------------------------------------------------------


def readme_table() -> dict[str, list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Command-line conventions", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        m = re.match(r"\| `([a-z -]+)` \|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def test_readme_table_lists_exactly_the_dispatchers_commands() -> None:
    assert sorted(readme_table()) == sorted(commands())
    assert not set(readme_table()) & set(DEPRECATED)


@pytest.mark.parametrize("command", commands())
def test_readme_formats_progress_and_codes_match_the_parsers(command: str) -> None:
    codes, formats, progress = readme_table()[command]
    choices: set[str] = set()
    has_progress = False
    for _, p in walk(parser_of(command), command):
        for action in p._actions:
            if "--format" in action.option_strings:
                choices |= set(action.choices or ())
            has_progress |= "--progress" in action.option_strings
    documented = set(re.findall(r"\b(table|json|csv|parquet|omh-ndjson|omh)(?![\w-])", formats))
    assert documented == choices, f"{command}: README says {documented}, parser has {choices}"
    assert (progress != "-") == has_progress, f"{command}: progress column vs --progress"
    numbers = {int(n) for n in re.findall(r"\b\d+\b", codes)}
    assert numbers <= set(cv.EXIT_MEANINGS) and {0, 2} <= numbers


# --- help --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [path for path, _ in every_parser()])
def test_every_command_and_subcommand_answers_help(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code([*path.split(), "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_every_option_and_subcommand_has_help_text() -> None:
    missing = []
    for path, p in every_parser():
        for action in p._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {c.dest}" for c in action._choices_actions if not c.help]
                continue
            if not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_json_format_says_json_lines() -> None:
    for path, p in every_parser():
        for action in p._actions:
            if "--format" in action.option_strings and "json" in (action.choices or ()):
                assert "one JSON object per line (JSON Lines)" in (action.help or ""), path


# --- exit codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", commands())
def test_an_unknown_option_exits_2(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code([*command.split(), "--no-such-option"]) == cv.EXIT_USAGE
    assert capsys.readouterr().err.strip()


BAD_CONFIG = {
    "collect": ["--config", "{bad}"],
    "doctor": ["--config", "{bad}", "--no-broker"],
    "process": ["--config", "{bad}"],
    "dashboard": ["--config", "{bad}"],
    "rules": ["run", "--config", "{bad}", "--once"],
    "query": ["hr", "--config", "{bad}"],
    "export": ["--out", "{tmp}/x", "--config", "{bad}"],
    "report": [
        "-p",
        "p-1",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-02",
        "--out",
        "{tmp}/r.html",
        "--config",
        "{bad}",
    ],
    "selfreport": ["pairs", "--from", "2025-01-01", "--to", "2025-01-02", "--config", "{bad}"],
    "participant": ["list", "--config", "{bad}"],
    "participant enroll": ["--config", "{bad}", "--no-reload"],
    "notice": ["--config", "{bad}", "--collector", "{bad}"],
    "broker": ["init", "--config", "{bad}", "--conf-dir", "{tmp}", "--secrets-dir", "{tmp}"],
    "influx setup": [
        "--config",
        "{bad}",
        "--operator-token-file",
        "{tmp}/t",
        "--secrets-dir",
        "{tmp}",
    ],
    "recompute": ["--config", "{bad}", "--since", "2025-01-01"],
}


@pytest.mark.parametrize("command", sorted(BAD_CONFIG))
def test_a_bad_config_file_exits_2_before_connecting(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("this is [not toml\n")
    args = [a.format(bad=bad, tmp=tmp_path) for a in BAD_CONFIG[command]]
    assert _exit_code([*command.split(), *args]) == cv.EXIT_USAGE
    out = capsys.readouterr()
    assert "bad.toml" in out.err + out.out


def test_a_bad_date_is_reported_before_the_missing_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("URL", "ORG", "BUCKET", "TOKEN"):
        monkeypatch.delenv(f"WELLSENSE_INFLUX_{name}", raising=False)
    assert _exit_code(["query", "hr", "--from", "notadate"]) == cv.EXIT_USAGE
    err = capsys.readouterr().err
    assert "'notadate' is neither YYYY-MM-DD nor an ISO 8601" in err and "no url" not in err
    assert _exit_code(["query", "hr", "--from", "2025-01-01"]) == cv.EXIT_USAGE
    assert "no url" in capsys.readouterr().err  # a good date gets as far as the URL


def test_research_exit_codes_for_nothing_refused_and_bad_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def raising(exc: Exception) -> int:
        raise exc

    assert _cli.run("q", lambda: raising(_cli.NoData("no rows"))) == cv.EXIT_NO_DATA
    assert _cli.run("q", lambda: raising(QueryError("HTTP 401", status=401))) == cv.EXIT_REFUSED
    assert _cli.run("q", lambda: raising(QueryError("HTTP 500", status=500))) == cv.EXIT_FAILURE
    assert _cli.run("q", lambda: raising(QueryError("unreachable"))) == cv.EXIT_FAILURE
    assert _cli.run("q", lambda: raising(_cli.BadData("f.csv:3: bad"))) == cv.EXIT_BAD_DATA
    assert "f.csv:3" in capsys.readouterr().err


def test_exit_code_for_maps_errors_to_the_table() -> None:
    class HttpError(RuntimeError):
        def __init__(self, status: int) -> None:
            self.status = status

    assert cv.exit_code_for(HttpError(401)) == cv.EXIT_REFUSED
    assert cv.exit_code_for(HttpError(403)) == cv.EXIT_REFUSED
    assert cv.exit_code_for(HttpError(500)) == cv.EXIT_FAILURE
    assert cv.exit_code_for(ValueError("bad key")) == cv.EXIT_USAGE
    assert cv.exit_code_for(KeyError("p-1")) == cv.EXIT_NO_DATA
    assert cv.exit_code_for(OSError("disk")) == cv.EXIT_FAILURE


def test_processing_units_do_not_restart_on_usage_or_refused() -> None:
    unit = (REPO / "deploy/server/wellsense-processing@.service").read_text()
    assert f"RestartPreventExitStatus={cv.EXIT_USAGE} {cv.EXIT_REFUSED}" in unit
    from processing.service import EXIT_INFLUX_AUTH

    assert EXIT_INFLUX_AUTH == cv.EXIT_REFUSED


# --- old spellings ---------------------------------------------------------------------------


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_old_spellings_still_work_with_a_warning(
    old: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code([old, "--help"]) == 0
    out = capsys.readouterr()
    assert f"'wellsense {old}' is deprecated" in out.err
    assert f"usage: wellsense {' '.join(DEPRECATED[old])}" in out.out
    assert f"  {old} " not in main_usage(capsys)  # hidden from the command list


def main_usage(capsys: pytest.CaptureFixture[str]) -> str:
    main(["--help"])
    return capsys.readouterr().out


def test_report_positional_participant_is_deprecated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WELLSENSE_INFLUX_URL", raising=False)
    argv = ["report", "p-1", "--from", "2025-01-01", "--to", "2025-01-02", "--out", "r.html"]
    assert _exit_code(argv) == cv.EXIT_USAGE  # no URL: stops before connecting
    err = capsys.readouterr().err
    assert "'wellsense report p-1' is deprecated" in err and "report -p p-1" in err
    assert _exit_code(["report", "--from", "2025-01-01", "--to", "2025-01-02", "--out", "r"]) == 2
    assert "--participant/-p" in capsys.readouterr().err


def test_groups_answer_help_and_refuse_unknown_actions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["influx", "--help"]) == 0
    assert "setup" in capsys.readouterr().out
    assert main(["influx", "frobnicate"]) == cv.EXIT_USAGE
    assert "unknown action 'frobnicate'" in capsys.readouterr().err


# --- progress ------------------------------------------------------------------------------


def test_progress_only_on_a_terminal_unless_asked() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    ns = argparse.Namespace
    assert not cv.progress_wanted(ns(progress=False, quiet=False), io.StringIO())
    assert cv.progress_wanted(ns(progress=False, quiet=False), Tty())
    assert cv.progress_wanted(ns(progress=True, quiet=False), io.StringIO())
    assert not cv.progress_wanted(ns(progress=False, quiet=True), Tty())


def test_countdown_draws_on_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    with cv.countdown(0.3, desc="scanning", enabled=True):
        pass
    out = capsys.readouterr()
    assert out.out == "" and "scanning" in out.err and "left" in out.err
    with cv.countdown(0.3, desc="scanning", enabled=False):
        pass
    assert capsys.readouterr().err == ""


def test_json_lines_are_one_compact_object_per_line() -> None:
    buf = io.StringIO()
    cv.write_json_lines([{"a": float("nan"), "b": [1.0, float("inf")]}, {"c": "x"}], buf)
    assert buf.getvalue() == '{"a":null,"b":[1.0,null]}\n{"c":"x"}\n'


def test_the_conventions_load_on_a_gateway_without_numpy_or_tqdm() -> None:
    import subprocess
    import sys

    code = (
        "import sys, collector.cli, collector.doctor, wellsense_cli.conventions; "
        "print(sorted(m for m in ('numpy', 'tqdm', 'pandas') if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert run.stdout.strip() == "[]"  # tqdm is imported only when a bar is drawn
