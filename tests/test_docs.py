"""The README and docs/ stay true: short README, links that resolve, and the blocks that
docs/generate.py writes from the code and bench/results.json equal to what it writes now.
Fast: no server, no model."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from clipmorph.serving import settings

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def generator():
    """docs/generate.py, loaded from its path: docs/ is a folder of pages, not a package."""
    spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_code(text: str) -> str:
    """Code blocks and code spans hold paths and comments, not links or headings."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as dashes, repeats numbered."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#+\s+(.+?)\s*$", FENCE.sub("", page.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(without_code(page.read_text())) if not re.match(r"[a-z]+:|/", t)]


def test_the_readme_reads_in_five_minutes_and_keeps_its_two_command_quick_start():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 200
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick_start, re.DOTALL).group(1)
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make serve", "make test"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, broken


def test_the_readme_links_to_every_docs_page():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in relative_links(REPO / "README.md")}
    assert {p for p in PAGES if p.parent.name == "docs"} <= linked, "a docs page the README does not name"
    assert (REPO / "docs" / "web-ui.png").resolve() in linked


def test_the_generated_blocks_are_what_the_generator_writes_now():
    """The settings table from clipmorph/serving/settings.py, the figures from bench/results.json:
    run `python docs/generate.py` when this fails."""
    gen = generator()
    for page, blocks in gen.BLOCKS.items():
        text = (REPO / "docs" / page).read_text()
        for name, render in blocks.items():
            assert gen.block_in(text, name) == render(), f"docs/{page}: block {name} is stale"


def test_the_bench_block_carries_the_figures_of_results_json():
    block = generator().bench_block()
    rendered = (REPO / "bench" / "RESULTS.md").read_text()  # written by bench/report.py from the same file
    targets = rendered.split("## Targets\n", 1)[1].split("\n\n", 1)[0]
    assert targets.strip() in block


def test_every_variable_the_service_reads_has_a_default_and_a_description(monkeypatch):
    source = inspect.getsource(settings)
    named = set(re.findall(r"CLIPMORPH_[A-Z_]+", source))
    read = set(re.findall(r"CLIPMORPH_[A-Z_]+", inspect.getsource(settings.ServiceSettings.from_env)))
    assert named <= set(settings.SETTINGS), named - set(settings.SETTINGS)
    assert set(settings.SETTINGS) == read, set(settings.SETTINGS) ^ read  # no entry for a variable gone
    assert all(s.meaning.strip() and "\n" not in s.meaning for s in settings.SETTINGS.values())
    # Every default parses: the service starts with none of its variables set.
    for name in settings.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert settings.ServiceSettings.from_env().max_upload_bytes == 200 * 1024 * 1024


def test_the_settings_table_has_one_row_per_variable_with_its_default():
    rows = settings.markdown_table().splitlines()[2:]
    assert [row.split(" | ")[0].strip("| `") for row in rows] == list(settings.SETTINGS)
    assert "| `CLIPMORPH_JOBS_DIR` | `$TMPDIR/clipmorph-jobs` |" in settings.markdown_table()
    assert "| `CLIPMORPH_ADMIN_TOKEN` | unset |" in settings.markdown_table()
