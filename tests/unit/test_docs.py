"""Documentation that is copied into the README must not drift from its source."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _prose_lines(text: str) -> list[str]:
    """Lines of running text (no table rows, code or headings), long enough to matter."""
    out, fenced = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            continue
        if not fenced and len(stripped) >= 60 and not stripped.startswith(("|", "#")):
            out.append(stripped)
    return out


def test_no_section_is_repeated_between_the_readme_and_docs() -> None:
    """Each text lives in one place; the README links to docs/ instead of copying."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    seen: dict[str, Path] = {}
    repeated = []
    for page in pages:
        for line in dict.fromkeys(_prose_lines(page.read_text())):
            if line in seen:
                repeated.append(f"{seen[line].name} and {page.name}: {line[:70]}")
            seen.setdefault(line, page)
    assert not repeated, "\n".join(repeated)


def test_readme_links_the_guides_it_summarises() -> None:
    readme = (REPO / "README.md").read_text()
    for guide in ("docs/storage.md", "docs/researchers.md", "docs/deploy.md", "docs/rules.md"):
        assert f"]({guide}" in readme, guide


def test_readme_quick_start_is_exactly_make_demo_and_make_test() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert quick.split("\n") == ["", "make demo", "make test", ""]


def test_sample_configs_exist_for_every_service() -> None:
    for sample in ("deploy/gateway/collector.sample.toml", "deploy/server/processing.sample.toml"):
        assert (REPO / sample).is_file(), sample
        assert sample in (REPO / "README.md").read_text()
