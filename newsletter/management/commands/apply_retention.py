"""Delete stale pending signups and drop old IP addresses and user agents."""

from django.core.management.base import BaseCommand

from newsletter import privacy


class Command(BaseCommand):
    help = (
        "Apply the retention rules: delete pending signups older than NEWSLETTER_PENDING_DAYS, "
        "drop IP addresses and user agents older than NEWSLETTER_CONSENT_DETAIL_DAYS, remove the "
        "Delivery rows of issues sent more than NEWSLETTER_DELIVERY_DAYS ago (their counts "
        "stay on the issue)."
    )

    def handle(self, *args, **options):
        result = privacy.apply_retention()
        self.stdout.write(
            f"Deleted {result.pending_deleted} stale pending signups; dropped IP address and "
            f"user agent from {result.consent_details_dropped} consent events; removed "
            f"{result.deliveries_removed} Delivery rows of old issues."
        )
