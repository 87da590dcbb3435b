"""The docs stay usable: README short, relative links resolve, every package says what it holds."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# [text](target) — not images' data URIs; the target up to a space or ")".
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PACKAGES = sorted(
    p.parent
    for p in (ROOT / "clawdesk").rglob("*.py")
    if "__pycache__" not in p.parts and p.parent.name not in ("data", "web")
)


def relative_links(page: Path) -> list[str]:
    """The link targets of a page that point into the repository (no URL, no anchor-only)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [
        target.split("#")[0]
        for target in LINK.findall(text)
        if not re.match(r"[a-z]+:", target) and not target.startswith("#")
    ]


def test_the_readme_is_at_most_200_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines: move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file(page: Path) -> None:
    broken = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)}: no such file: {broken}"


def test_links_are_found() -> None:
    # The checker above is only worth something if it sees links at all.
    assert "docs/architecture.md" in relative_links(ROOT / "README.md")


@pytest.mark.parametrize("package", sorted(set(PACKAGES)), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_clawdesk_package_has_a_docstring(package: Path) -> None:
    init = package / "__init__.py"
    assert init.is_file(), f"{package.relative_to(ROOT)} has no __init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert doc and doc.strip(), f"{init.relative_to(ROOT)}: say in a docstring what belongs here"


def test_architecture_lists_every_subpackage() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for package in set(PACKAGES) - {ROOT / "clawdesk"}:
        name = package.relative_to(ROOT).as_posix() + "/"
        assert f"`{name}`" in text, f"docs/architecture.md does not list {name}"


def test_no_machine_specific_paths_in_docs() -> None:
    for page in PAGES:
        found = re.findall(r"(?<![\w.])/(?:work|home|Users|tmp)/\S*", page.read_text("utf-8"))
        assert not found, f"{page.relative_to(ROOT)}: machine-specific paths {found}"
