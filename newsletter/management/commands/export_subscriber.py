"""Print everything Advances holds about one subscriber, as JSON."""

from django.core.management.base import BaseCommand, CommandError

from newsletter import privacy
from newsletter.models import Subscriber
from newsletter.subscriptions import normalize_email


class Command(BaseCommand):
    help = "Write one subscriber's data (subscriber, topics, consent log, deliveries) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("email")

    def handle(self, *args, **options):
        subscriber = Subscriber.objects.filter(email=normalize_email(options["email"])).first()
        if subscriber is None:
            raise CommandError("No subscriber with that address.")
        self.stdout.write(privacy.subscriber_export_json(subscriber=subscriber))
