"""The repository explains itself: every relative link in the README and docs/ resolves
to a file inside the repository, and nothing points outside it."""

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
OUTSIDE = re.compile(r"\.\./shared|/work/")


def links(document: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
    return LINK.findall(text)


def relative_links(document: Path) -> list[str]:
    return [
        link
        for link in links(document)
        if not urlsplit(link).scheme and not link.startswith(("#", "//"))
    ]


def test_the_docs_folder_has_its_index_and_core_documents():
    names = {path.name for path in DOCUMENTS}
    assert {"README.md", "architecture.md", "rules.md", "operations.md"} <= names
    assert "docs/README.md" in relative_links(ROOT / "README.md")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(document):
    for link in relative_links(document):
        path = unquote(urlsplit(link).path)
        target = (document.parent / path).resolve()
        assert target.is_relative_to(ROOT), f"{link} points outside the repository"
        assert target.exists(), f"{link} in {document.name} does not exist"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_nothing_points_outside_the_repository(document):
    assert not OUTSIDE.search(document.read_text()), OUTSIDE.search(document.read_text())


def test_every_document_in_docs_is_listed_in_its_index():
    index = relative_links(ROOT / "docs" / "README.md")
    for path in DOCUMENTS:
        if path.parent.name == "docs" and path.name != "README.md":
            assert path.name in index, f"docs/{path.name} is not in docs/README.md"


def test_the_rules_name_tests_that_exist():
    tests = {
        f"{path.name}::{name}"
        for path in (ROOT / "tests").glob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text(), flags=re.MULTILINE)
    }
    named = re.findall(r"`(test_\w+\.py::test_\w+)`", (ROOT / "docs" / "rules.md").read_text())
    assert named
    missing = [name for name in named if name not in tests]
    assert not missing, missing


def test_a_broken_link_would_be_caught(tmp_path):
    # The link check above could not fail if it resolved everything.
    page = tmp_path / "page.md"
    page.write_text("[gone](no-such-file.md) and [out](../../shared/DESIGN.md)")
    targets = [(page.parent / link).resolve() for link in relative_links(page)]
    assert not any(target.exists() for target in targets)
    assert OUTSIDE.search(page.read_text())
