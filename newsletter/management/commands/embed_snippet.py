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
            choices=["", *embed.language_codes()],
            help="en or es: the form's labels, the messages and the reader's language, "
            "whatever the page's <html lang> says. By default labels are in English and "
            "messages and the reader's language follow the page's <html lang>.",
        )
        parser.add_argument(
            "--page",
            default="",
            help="The address of the page that will carry the code, e.g. "
            "https://www.example.org/second-opinion/: where Advances' thank-you page links "
            "back to when the script does not run.",
        )

    def handle(self, *args, **options):
        try:
            code = embed.snippet(
                source=options["source"], language=options["language"], page=options["page"]
            )
        except embed.InvalidSource:
            raise CommandError(
                "A source is lower-case letters, digits, '-' or '_' (at most 100)."
            ) from None
        except embed.InvalidPage:
            raise CommandError(
                "--page must be the page's full address, starting with https:// or http://."
            ) from None
        self.stdout.write(code)
        if not embed.allowed_origins():
            self.stderr.write(
                "Note: NEWSLETTER_EMBED_ORIGINS is empty, so no other site can use this yet."
            )
        elif options["page"] and not embed.is_allowed_origin(options["page"]):
            self.stderr.write(
                f"Note: {embed.normalize_origin(options['page'])} is not in "
                "NEWSLETTER_EMBED_ORIGINS, so the form signs nobody up on that page."
            )
