"""The Spanish catalogue is complete: Django's makemessages, run over the code and the
templates as `make messages` runs it, finds nothing new, nothing untranslated, nothing
fuzzy and nothing stale. Needs xgettext (Debian's gettext; CI installs it)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter import catalogues
from tests.conftest import BASE_DIR

# What makemessages reads (the Makefile's MAKEMESSAGES_IGNORE leaves out the rest).
SOURCES = ("manage.py", "project", "newsletter", "templates")


@pytest.fixture
def fresh_copy(tmp_path: Path) -> Path:
    if shutil.which("xgettext") is None:
        reason = "xgettext is missing: apt-get install gettext"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must check the catalogue")
        pytest.skip(reason)
    for name in SOURCES:
        source = BASE_DIR / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def test_makemessages_finds_no_missing_or_stale_spanish_entries(fresh_copy: Path):
    # The same command as `make messages`, on a copy, so the repository's files stay as
    # they are.
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--all", "--add-location", "file"],
        cwd=fresh_copy,
        env={**os.environ, "DEBUG": "1", "VAR_DIR": str(fresh_copy / "var")},
        check=True,
        capture_output=True,
        timeout=300,
    )
    locale = fresh_copy / "newsletter" / "locale"
    problems = [str(gap) for gap in catalogues.gaps(locale) + catalogues.obsolete(locale)]
    assert problems == [], "run `make messages` and translate:\n" + "\n".join(problems)
