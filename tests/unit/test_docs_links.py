"""The docs hold together: every relative link in README.md, ARCHITECTURE.md and docs/*.md resolves
(the file exists; an ``#anchor`` into a Markdown file names one of its headings), and the README keeps
the command CI runs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", REPO / "ARCHITECTURE.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without fenced blocks, HTML comments and code spans, where a (link) is not a link."""
    return CODE_SPAN.sub("", COMMENT.sub("", FENCE.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a Markdown page, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", COMMENT.sub("", page.read_text()))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_pages_exist_and_link():
    assert (REPO / "docs").is_dir() and len(PAGES) > 3, PAGES
    assert sum(len(relative_links(p)) for p in PAGES) > 10, "the pages link to nothing: is the link pattern broken?"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = unquote(target).partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif not dest.is_relative_to(REPO):
            broken.append(f"{target}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)} has broken links (fix the link or the heading):\n" + "\n".join(broken)


def test_anchor_rules_match_githubs():
    """The slug rule the anchor check relies on, on headings like the docs' own."""
    assert slug("Where the workers go (the plan)") == "where-the-workers-go-the-plan"
    assert slug("Operators' guide: running on a cluster") == "operators-guide-running-on-a-cluster"
    assert slug("The `Row` and its columns") == "the-row-and-its-columns"


def test_readme_keeps_the_command_ci_runs():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    [command] = [line for line in ci if "pip install" in line]
    assert command.strip() in (REPO / "README.md").read_text(), f"README.md lost the command .ci/run runs: {command}"
