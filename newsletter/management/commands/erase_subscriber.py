"""Erase one subscriber's personal data (see privacy.erase_subscriber)."""

from django.core.management.base import BaseCommand, CommandError

from newsletter import privacy
from newsletter.models import Subscriber
from newsletter.subscriptions import normalize_email


class Command(BaseCommand):
    help = (
        "Erase a subscriber's personal data for good, keeping only a keyed hash of the "
        "address so that it is never imported again."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument(
            "--source", default="erase_subscriber command", help="Recorded with the erasure."
        )

    def handle(self, *args, **options):
        subscriber = Subscriber.objects.filter(email=normalize_email(options["email"])).first()
        if subscriber is None:
            raise CommandError("No subscriber with that address.")
        privacy.erase_subscriber(subscriber_id=subscriber.pk, source=options["source"])
        self.stdout.write("Erased.")
