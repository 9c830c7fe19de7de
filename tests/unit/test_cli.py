"""The `wellsense` command: every subcommand answers --help; bad usage exits 2."""

from __future__ import annotations

import pytest

from wellsense_cli.main import SUBCOMMANDS, main


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert f"  {name} " in out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main([name, "--help"])
    except SystemExit as exc:  # argparse exits; some commands return the code instead
        code = exc.code  # type: ignore[assignment]
    assert code == 0
    assert "usage:" in capsys.readouterr().out


def test_unknown_command_and_no_command_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main([]) == 2
