"""Write the active subscribers as CSV to stdout."""

from django.core.management.base import BaseCommand

from newsletter import importing


class Command(BaseCommand):
    help = "Write every active subscriber as CSV (email, first_name, topics, confirmed_at)."

    def handle(self, *args, **options):
        importing.export_active_subscribers(out=self.stdout)
