"""Documentation that is copied into the README must not drift from its source."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_carries_the_storage_schema_verbatim() -> None:
    storage = (REPO / "docs" / "storage.md").read_text().split("\n", 1)[1].strip()
    assert storage in (REPO / "README.md").read_text()


def test_readme_quick_start_is_exactly_make_demo_and_make_test() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert quick.split("\n") == ["", "make demo", "make test", ""]


def test_sample_configs_exist_for_every_service() -> None:
    for sample in ("deploy/gateway/collector.sample.toml", "deploy/server/processing.sample.toml"):
        assert (REPO / sample).is_file(), sample
        assert sample in (REPO / "README.md").read_text()
