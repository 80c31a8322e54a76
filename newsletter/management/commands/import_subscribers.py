"""Import subscribers from a CSV file (see importing.py for the rules)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from newsletter import importing


class Command(BaseCommand):
    help = (
        "Import subscribers from a UTF-8 CSV file with columns email, consent and optionally "
        "first_name, topics (slugs separated by ';') and confirmed (yes/no). All or nothing: "
        "any bad line is reported and nothing is imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--source",
            required=True,
            help='What this import is, kept in each consent event (e.g. "2024 health fair list").',
        )

    def handle(self, *args, **options):
        path: Path = options["file"]
        try:
            if path.stat().st_size > importing.MAX_BYTES:
                raise CommandError(
                    f"{path} is larger than {importing.MAX_BYTES // (1024 * 1024)} MB; split it."
                )
            data = path.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}.") from error
        try:
            report = importing.import_subscribers(
                data=data, source=options["source"], file_name=path.name
            )
        except importing.ImportConflict as error:
            raise CommandError(
                "The list changed during the import; nothing was imported. Run it again."
            ) from error
        for problem in report.errors:
            self.stderr.write(f"line {problem.line}: {problem.message}")
        for problem in report.skipped:
            self.stdout.write(f"line {problem.line}: skipped: {problem.message}")
        if not report.imported:
            raise CommandError(f"{len(report.errors)} error(s); nothing was imported.")
        self.stdout.write(
            f"Imported {report.activated} active and {report.pending} pending "
            f"(confirmation emails queued); skipped {len(report.skipped)}."
        )
