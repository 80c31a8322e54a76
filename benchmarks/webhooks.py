"""How fast the ESP webhook takes events, through the whole Django stack.

Posts Postmark delivery events (and one bounce in ten, each applied by its task, inline)
to /anymail/postmark/tracking/ with Django's test client, in a throwaway test database,
and, in the same run, plain GETs of /healthz: the ratio says what an event costs over
a bare request. Run with the database to measure on, e.g.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python benchmarks/webhooks.py --events 5000
"""

import argparse
import base64
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("DEBUG", "1")
os.environ["ANYMAIL_WEBHOOK_SECRET"] = "bench:secret"  # noqa: S105 - a throwaway test database

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"bench:secret").decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from newsletter.models import Delivery, DeliveryEvent, Issue, Subscriber
        from project.celery import app

        app.conf.task_always_eager = True
        issue = Issue.objects.create(subject="Bench", slug="bench", status=Issue.Status.SENT)
        readers = Subscriber.objects.bulk_create(
            Subscriber(email=f"reader{n}@example.org", status="active") for n in range(args.events)
        )
        rows = Delivery.objects.bulk_create(
            Delivery(issue=issue, subscriber=reader, status="sent") for reader in readers
        )
        client = Client()
        started = time.perf_counter()
        for n, (reader, row) in enumerate(zip(readers, rows, strict=True)):
            bounce = n % 10 == 0
            event: dict[str, object] = {
                "RecordType": "Bounce" if bounce else "Delivery",
                "MessageID": str(uuid.uuid4()),
                "Metadata": {"issue": str(issue.pk), "delivery": str(row.pk)},
                "DeliveredAt": "2026-11-25T17:25:40Z",
                "Recipient": reader.email,
            }
            if bounce:
                event.update(ID=n, Type="HardBounce", Email=reader.email)
            response = client.post(
                "/anymail/postmark/tracking/",
                json.dumps(event),
                content_type="application/json",
                HTTP_AUTHORIZATION=AUTH,
            )
            assert response.status_code == 200, response.status_code
        webhook = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(args.events):
            client.get("/healthz")
        bare = time.perf_counter() - started
        recorded = DeliveryEvent.objects.count()
        bounced = Subscriber.objects.filter(status="bounced").count()
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
    print(f"database: {connection.vendor}")
    print(f"events posted: {args.events}, recorded: {recorded}, readers bounced: {bounced}")
    print(f"webhook: {args.events / webhook:,.0f} events/s ({webhook / args.events * 1000:.2f} ms)")
    print(f"/healthz: {args.events / bare:,.0f} requests/s ({bare / args.events * 1000:.2f} ms)")
    print(f"an event costs {webhook / bare:.1f}x a bare request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
