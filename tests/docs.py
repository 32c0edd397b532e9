"""The documentation as tests read it: README.md and the pages of docs/ it links.

Material moves between the README and the pages; a test names the section it checks by its
heading, and `section` finds it wherever it lives, so a move does not break the test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = (README, *sorted((ROOT / "docs").glob("*.md")))

_FENCE = re.compile(r"^```")
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")


def headings(text: str) -> Iterator[tuple[int, int, str]]:
    """(line index, level, title) of each Markdown heading, skipping fenced code (whose shell
    comments also start with `#`)."""
    fenced = False
    for index, line in enumerate(text.splitlines()):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            yield index, len(match[1]), match[2]


def section(title: str) -> str:
    """The text under the heading `title` (of any level), up to the next heading of the same or
    a higher level, from the one page (README.md or docs/*.md) that has it; its sub-sections
    are included. Fails when no page, or more than one heading, has that title."""
    found = []
    for page in PAGES:
        text = page.read_text()
        lines = text.splitlines(keepends=True)
        marks = list(headings(text))
        for position, (index, level, name) in enumerate(marks):
            if name != title:
                continue
            end = next((i for i, lv, _ in marks[position + 1 :] if lv <= level), len(lines))
            found.append("".join(lines[index + 1 : end]))
    assert len(found) == 1, f"{len(found)} headings titled {title!r} in README.md and docs/"
    return found[0]


def parts(text: str, deepest: int) -> list[tuple[str, str]]:
    """(title, text) of each heading of level `deepest` or higher, its text running to the next
    such heading (a page's `# ` title counts: a docs page may open with its only section)."""
    lines = text.splitlines(keepends=True)
    marks = [(index, title) for index, level, title in headings(text) if level <= deepest]
    ends = [index for index, _ in marks[1:]] + [len(lines)]
    return [(title, "".join(lines[index + 1 : end])) for (index, title), end in zip(marks, ends, strict=True)]


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation other than `-` and `_` dropped,
    each space a `-` (`### deploy/` is `#deploy`, `Failover: a primary` is `#failover-a-primary`)."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings; a repeated one gets `-1`, `-2`, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, _, title in headings(text):
        base = anchor(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found
