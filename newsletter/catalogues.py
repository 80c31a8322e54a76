"""The translation catalogues (newsletter/locale/<language>/LC_MESSAGES/django.po).

    python -m newsletter.catalogues --compile   # .po -> .mo, where the .mo is older
    python -m newsletter.catalogues --check     # list untranslated and fuzzy entries

The .mo files are build output, not kept in git: `make install`, `make run`, `make
test` and `make serve` compile them with polib, so a fresh machine needs no gettext
tools to serve every language. `make messages` (Django's makemessages, which needs
xgettext) brings new strings from the code and templates into the .po files; then
`--check` lists what still needs a translator. Plain Python on purpose: it runs before
Django is set up.
"""

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import polib  # type: ignore[import-untyped]

LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def catalogues(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    return sorted(locale_dir.glob("*/LC_MESSAGES/django.po"))


def compile_catalogues(locale_dir: Path = LOCALE_DIR, *, force: bool = False) -> list[Path]:
    """Write each catalogue's .mo beside it where it is missing or older than the .po.
    Fuzzy entries are left out, as msgfmt does. Returns the .mo files written."""
    written = []
    for po_path in catalogues(locale_dir):
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        catalogue = polib.pofile(str(po_path))
        for entry in catalogue.fuzzy_entries():
            catalogue.remove(entry)
        # Written beside it and moved into place, so a process reading it (a test run
        # started at the same time) never sees half a file.
        partial = mo_path.with_suffix(f".mo.{os.getpid()}")
        catalogue.save_as_mofile(str(partial))
        os.replace(partial, mo_path)
        written.append(mo_path)
    return written


@dataclass(frozen=True)
class Gap:
    """An entry a translator still has to do."""

    language: str
    kind: str  # "untranslated" or "fuzzy" (msgmerge's guess, not yet checked)
    msgid: str
    where: str

    def __str__(self) -> str:
        return f"{self.language} {self.kind}: {self.msgid!r}" + (
            f" ({self.where})" if self.where else ""
        )


def gaps(locale_dir: Path = LOCALE_DIR) -> list[Gap]:
    """Every untranslated or fuzzy entry of every catalogue (obsolete ones are not
    used, and are not counted)."""
    found = []
    for po_path in catalogues(locale_dir):
        language = po_path.parent.parent.name
        catalogue = polib.pofile(str(po_path))
        for kind, entries in (
            ("untranslated", catalogue.untranslated_entries()),
            ("fuzzy", catalogue.fuzzy_entries()),
        ):
            for entry in entries:
                if entry.obsolete:
                    continue
                where = ", ".join(path for path, _ in entry.occurrences[:2])
                found.append(Gap(language, kind, entry.msgid, where))
    return found


def obsolete(locale_dir: Path = LOCALE_DIR) -> list[Gap]:
    """Entries kept in a catalogue that no code or template uses any more."""
    return [
        Gap(po_path.parent.parent.name, "obsolete", entry.msgid, "")
        for po_path in catalogues(locale_dir)
        for entry in polib.pofile(str(po_path)).obsolete_entries()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m newsletter.catalogues", description=__doc__)
    parser.add_argument("--compile", action="store_true", help="compile .po files to .mo")
    parser.add_argument("--force", action="store_true", help="with --compile: every file")
    parser.add_argument(
        "--check", action="store_true", help="list untranslated, fuzzy and obsolete entries"
    )
    parser.add_argument("--locale-dir", type=Path, default=LOCALE_DIR)
    options = parser.parse_args(argv)
    if not (options.compile or options.check):
        parser.error("say --compile or --check")
    status = 0
    if options.check:
        problems = gaps(options.locale_dir) + obsolete(options.locale_dir)
        for problem in problems:
            print(problem)
        print(f"{len(problems)} entries need a translator.", file=sys.stderr)
        status = 1 if problems else 0
    if options.compile:
        for mo_path in compile_catalogues(options.locale_dir, force=options.force):
            print(f"compiled {mo_path.relative_to(options.locale_dir.parent)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
