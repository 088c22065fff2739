"""The README is a landing page and the manual is docs/*.md (issue 25): every relative link
and image resolves to a file, every ``#anchor`` to a heading of its page, and the README
stays short and keeps the test command ``.ci/run`` runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = (README, *sorted((ROOT / "docs").glob("*.md")))
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(page: Path) -> str:
    """The page without its fenced code blocks (a ``[x](y)`` there is not a link)."""
    return _FENCE.sub("", page.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation but '-' and '_' dropped, spaces → '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor, repeated titles numbered ``-1``, ``-2`` as GitHub does."""
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_prose(page)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    return [t for t in _LINK.findall(_prose(page)) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_slugs_follow_githubs_rules() -> None:
    assert slug("Why ctxscope's numbers differ from other tools") == "why-ctxscopes-numbers-differ-from-other-tools"
    assert slug("Beyond the trained length: `--rope-scaling`") == "beyond-the-trained-length---rope-scaling"
    assert slug("Responsiveness of the app (the GIL)") == "responsiveness-of-the-app-the-gil"
    assert slug("run_sweep & friends") == "run_sweep--friends"


def test_the_manual_has_its_pages() -> None:
    names = {p.name for p in PAGES[1:]}
    assert {"README.md", "install.md", "measuring.md", "app.md", "attention.md", "quality.md", "reports.md",
            "estimate-and-maxctx.md", "remote.md", "history.md", "architecture.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert links(page), "a page with no links at all: the parser is broken"
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_file():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, "\n".join(broken)


def test_a_broken_link_and_a_broken_anchor_are_caught(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# Title\n\n## A `b`: c\n\n[ok](#a-b-c) [bad](#nope) ![img](missing.png)\n\n```\n[x](y)\n```\n",
                    encoding="utf-8")
    assert links(page) == ["#a-b-c", "#nope", "missing.png"]
    assert anchors(page) == {"title", "a-b-c"}


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda p: p.name)
def test_every_manual_page_is_in_the_index_and_opens_with_its_contents(page: Path) -> None:
    if page.name != "README.md":
        assert page.name in links(ROOT / "docs" / "README.md")
        head = page.read_text(encoding="utf-8").splitlines()[:30]
        assert "**On this page**" in head, "a table of contents at the top"
        assert any(line.lstrip().startswith("- [") for line in head)


def test_the_readme_is_a_landing_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300
    # .ci/run greps the first line matching this and runs it: it must stay, exactly
    assert 'pip install -e ".[test]" && python -m pytest' in lines
    assert "docs/README.md" in links(README)
