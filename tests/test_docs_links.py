"""The README and the docs/ pages link to each other and to sections that exist: every relative
link names a file of the repository, every `#anchor` a heading of the page it points into (with
GitHub's anchor rules), and the README links every docs/ page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import PAGES, README, ROOT, anchor, anchors

# [text](target): a relative target, with no scheme (http:, https:, mailto:).
_LINK = re.compile(r"\]\((?![a-z]+:)([^)\s]+)\)")
_FENCED = re.compile(r"^```.*?^```", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")


def links(page: Path) -> list[str]:
    """The relative link targets of the page's prose (not of its code)."""
    prose = _CODE.sub("", _FENCED.sub("", page.read_text()))
    return _LINK.findall(prose)


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT)}")
        elif fragment and fragment not in anchors(resolved.read_text()):
            broken.append(f"{target}: no heading with that anchor in {resolved.relative_to(ROOT)}")
    assert broken == []


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    assert [page.relative_to(ROOT) for page in PAGES[1:] if page not in linked] == []


def test_anchors_follow_githubs_rules() -> None:
    assert anchor("Failover: a primary and synchronous standbys") == (
        "failover-a-primary-and-synchronous-standbys"
    )
    assert anchor("deploy/") == "deploy"
    assert anchor("Recipes: leader election, semaphore, read-write lock") == (
        "recipes-leader-election-semaphore-read-write-lock"
    )
    assert anchors("# A\n## A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1", "a-2"}
