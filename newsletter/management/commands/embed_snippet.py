"""Print the embed code (newsletter.embed.snippet) for one page of the center's site."""

from django.core.management.base import BaseCommand, CommandError

from newsletter import embed


class Command(BaseCommand):
    help = (
        "Print the signup embed code for a page of another site. Its origin must be in "
        "NEWSLETTER_EMBED_ORIGINS for the form to work there."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--source",
            required=True,
            help="A name for the page, recorded on every reader who signs up there, "
            "e.g. second-opinion-page.",
        )
        parser.add_argument(
            "--language",
            default="",
            help="en or es: the form's labels, and the messages whatever the page's "
            "<html lang> says. By default labels are in English and messages follow the page.",
        )

    def handle(self, *args, **options):
        try:
            code = embed.snippet(source=options["source"], language=options["language"])
        except embed.InvalidSource:
            raise CommandError(
                "A source is lower-case letters, digits, '-' or '_' (at most 100)."
            ) from None
        self.stdout.write(code)
        if not embed.allowed_origins():
            self.stderr.write(
                "Note: NEWSLETTER_EMBED_ORIGINS is empty, so no other site can use this yet."
            )
