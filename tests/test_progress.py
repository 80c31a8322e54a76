"""An issue's progress figures: counted from the ledger at most every few seconds, kept
on the issue, and kept after its Delivery rows are removed by the retention policy."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from newsletter import privacy, progress, sending, tracking
from newsletter.models import Delivery, DeliveryEvent, Issue
from tests.factories import (
    EducationPieceFactory,
    IssueFactory,
    SubscriberFactory,
    UserFactory,
    approve,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def issue(main_topic):
    return approve(
        IssueFactory(with_pieces=[EducationPieceFactory(title="A piece", body="Some text.")])
    )


@pytest.fixture
def sent_issue(issue, main_topic, django_capture_on_commit_callbacks):
    SubscriberFactory.create_batch(6, topics=[main_topic])
    with django_capture_on_commit_callbacks(execute=True):
        sending.start_issue(issue_id=issue.pk)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT
    return issue


def ledger_counts(queries):
    return [
        q for q in queries if "COUNT(" in q["sql"].upper() and "newsletter_delivery" in q["sql"]
    ]


def test_progress_is_counted_at_most_every_few_seconds(issue, main_topic, settings):
    settings.NEWSLETTER_BATCH_SIZE = 2
    settings.NEWSLETTER_PROGRESS_SECONDS = 10
    SubscriberFactory.create_batch(6, topics=[main_topic])
    sending.start_issue(issue_id=issue.pk)
    sending.send_batch(issue_id=issue.pk)
    issue.refresh_from_db()
    with CaptureQueriesContext(connection) as first:
        assert sending.issue_progress(issue).counts["sent"] == 2
    sending.send_batch(issue_id=issue.pk)
    with CaptureQueriesContext(connection) as again:
        assert sending.issue_progress(issue).counts["sent"] == 2  # as counted 0 s ago
    assert ledger_counts(first.captured_queries)
    assert not ledger_counts(again.captured_queries)

    with time_machine.travel(timezone.now() + timedelta(seconds=11)):
        later = sending.issue_progress(issue)
    assert later.counts["sent"] == 4
    assert later.rate > 0


def test_an_ended_send_keeps_its_final_figures_without_counting_again(sent_issue):
    assert sent_issue.progress_counts[progress.FINAL] is True
    later = timezone.now() + timedelta(days=3)
    with time_machine.travel(later), CaptureQueriesContext(connection) as queries:
        figures = sending.issue_progress(sent_issue)
    assert figures.counts["sent"] == 6
    assert not ledger_counts(queries.captured_queries)


def test_the_progress_json_gives_the_kept_figures(client, sent_issue):
    client.force_login(UserFactory(is_superuser=True))
    reply = client.get(reverse("admin:newsletter_issue_progress_json", args=[sent_issue.pk]))
    assert reply.status_code == 200
    body = reply.json()
    assert (body["status"], body["counts"]["sent"], body["done"]) == ("sent", 6, 6)


def test_old_issues_lose_their_rows_but_keep_their_counts_and_outcome(sent_issue, settings):
    settings.NEWSLETTER_DELIVERY_DAYS = 30
    row = Delivery.objects.filter(issue=sent_issue).first()
    DeliveryEvent.objects.create(
        esp="Mailgun", event_key="e1", kind="bounced", esp_event_type="bounced",
        delivery=row, subscriber=row.subscriber, occurred_at=timezone.now(),
    )  # fmt: skip
    assert privacy.apply_retention().deliveries_removed == 0  # too recent

    with time_machine.travel(timezone.now() + timedelta(days=31)):
        result = privacy.apply_retention()
    assert result.deliveries_removed == 6
    assert not Delivery.objects.filter(issue=sent_issue).exists()
    assert DeliveryEvent.objects.filter(event_key="e1", delivery=None).exists()
    sent_issue.refresh_from_db()
    assert sending.issue_progress(sent_issue).counts["sent"] == 6
    outcome = tracking.issue_outcome(sent_issue)
    assert (outcome.sent, outcome.counts["bounced"]) == (6, 1)


def test_series_steps_keep_their_rows(sent_issue, settings):
    settings.NEWSLETTER_DELIVERY_DAYS = 1
    Issue.objects.filter(pk=sent_issue.pk).update(kind=Issue.Kind.SERIES_STEP)
    with time_machine.travel(timezone.now() + timedelta(days=5)):
        assert progress.retire_old_deliveries() == 0
    assert Delivery.objects.filter(issue=sent_issue).count() == 6


def test_the_retention_command_says_how_many_rows_it_removed(sent_issue, settings, capsys):
    settings.NEWSLETTER_DELIVERY_DAYS = 0  # keep for ever
    call_command("apply_retention")
    assert "removed 0 Delivery rows" in capsys.readouterr().out
    assert Delivery.objects.filter(issue=sent_issue).count() == 6
