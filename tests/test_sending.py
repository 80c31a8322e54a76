"""The sending pipeline, run inline against the real database (the worker tests in
test_delivery_worker.py run it on real workers, Redis and the fake ESP)."""

import io
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.test.signals import template_rendered
from django.utils import timezone

from newsletter import composing, sending, subscriptions
from newsletter.models import ConsentEvent, Delivery, Issue, Subscriber
from newsletter.subscriptions import Origin
from tests.conftest import links_in, path_of
from tests.factories import EducationPieceFactory, IssueFactory, SubscriberFactory, approve

pytestmark = pytest.mark.django_db


@pytest.fixture
def issue(main_topic):
    return approve(
        IssueFactory(
            subject="Second opinions",
            with_pieces=[
                EducationPieceFactory(title="Why it matters", body="It can change your plan.")
            ],
        )
    )


@pytest.fixture
def readers(main_topic, topic):
    """Ten active readers of the issue's topic, and one of each kind who must get nothing."""
    active = SubscriberFactory.create_batch(10, topics=[main_topic])
    SubscriberFactory(email="pending@example.com", status="pending", topics=[main_topic])
    SubscriberFactory(email="gone@example.com", status="unsubscribed", topics=[main_topic])
    SubscriberFactory(email="bounced@example.com", status="bounced", topics=[main_topic])
    SubscriberFactory(email="complained@example.com", status="complained", topics=[main_topic])
    SubscriberFactory(email="other-topic@example.com", topics=[topic])
    return active


def recipients():
    return sorted(message.to[0] for message in mail.outbox)


def send_all(issue, capture):
    approve(issue)  # the issue as the test left it
    with capture(execute=True):
        return sending.start_issue(issue_id=issue.pk)


def test_every_active_reader_in_the_topics_gets_the_issue_exactly_once(
    issue, readers, django_capture_on_commit_callbacks, settings
):
    settings.NEWSLETTER_BATCH_SIZE = 3

    assert send_all(issue, django_capture_on_commit_callbacks) == 10

    assert recipients() == sorted(r.email for r in readers)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT
    assert issue.sent_at is not None
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert Delivery.objects.filter(attempts=1).count() == 10


def test_a_reader_in_two_target_topics_gets_it_once(
    issue, main_topic, topic, django_capture_on_commit_callbacks
):
    issue.topics.add(topic)
    SubscriberFactory(email="both@example.com", topics=[main_topic, topic])
    send_all(issue, django_capture_on_commit_callbacks)
    assert recipients() == ["both@example.com"]


def test_each_reader_gets_their_own_working_unsubscribe_link_and_list_headers(
    issue, readers, django_capture_on_commit_callbacks, settings
):
    send_all(issue, django_capture_on_commit_callbacks)

    links = set()
    for message in mail.outbox:
        headers = message.extra_headers
        unsubscribe = links_in(message, "/newsletter/unsubscribe/")[0]
        assert headers["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert unsubscribe.startswith("https://")
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Id"] == settings.NEWSLETTER_LIST_ID
        assert settings.NEWSLETTER_POSTAL_ADDRESS in message.body
        assert message.alternatives[0][1] == "text/html"
        links.add(unsubscribe)
    assert len(links) == 10

    message = mail.outbox[0]
    response = Client().post(
        path_of(links_in(message, "/newsletter/unsubscribe/")[0]),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Subscriber.objects.get(email=message.to[0]).status == Subscriber.Status.UNSUBSCRIBED


def test_the_issue_is_rendered_once_for_all_readers(
    issue, readers, django_capture_on_commit_callbacks, settings
):
    settings.NEWSLETTER_BATCH_SIZE = 2
    composing._rendered.clear()  # the approval's render counts: once, then reused
    rendered = []

    def record(sender, template, **kwargs):
        rendered.append(template.name)

    template_rendered.connect(record)
    try:
        send_all(issue, django_capture_on_commit_callbacks)
    finally:
        template_rendered.disconnect(record)
    assert rendered.count("newsletter/emails/issue.html") == 1
    assert len(mail.outbox) == 10


def test_a_second_start_sends_nothing_more(issue, readers, django_capture_on_commit_callbacks):
    send_all(issue, django_capture_on_commit_callbacks)
    Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.DRAFT)

    assert send_all(issue, django_capture_on_commit_callbacks) == 0
    assert len(mail.outbox) == 10
    assert Delivery.objects.count() == 10


def test_someone_unsubscribing_mid_send_is_skipped(
    issue, readers, django_capture_on_commit_callbacks
):
    sending.start_issue(issue_id=issue.pk)  # snapshot taken, nothing sent yet
    leaver = readers[-1]
    subscriptions.unsubscribe(subscriber=leaver, origin=Origin())

    while sending.send_batch(issue_id=issue.pk):
        pass

    assert leaver.email not in recipients()
    assert len(mail.outbox) == 9
    assert Delivery.objects.get(subscriber=leaver).status == Delivery.Status.SKIPPED


def test_pause_then_resume_sends_to_everyone_exactly_once(
    issue, readers, django_capture_on_commit_callbacks, settings
):
    settings.NEWSLETTER_BATCH_SIZE = 4
    sending.start_issue(issue_id=issue.pk)
    sending.send_batch(issue_id=issue.pk)
    assert sending.pause_issue(issue_id=issue.pk)

    assert sending.send_batch(issue_id=issue.pk) == 0  # a paused issue claims nothing
    assert len(mail.outbox) == 4

    with django_capture_on_commit_callbacks(execute=True):
        assert sending.resume_issue(issue_id=issue.pk) == 6
    assert recipients() == sorted(r.email for r in readers)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_cancel_stops_the_send(issue, readers, settings):
    settings.NEWSLETTER_BATCH_SIZE = 4
    sending.start_issue(issue_id=issue.pk)
    sending.send_batch(issue_id=issue.pk)

    assert sending.cancel_issue(issue_id=issue.pk)

    assert sending.send_batch(issue_id=issue.pk) == 0
    assert len(mail.outbox) == 4
    assert Delivery.objects.filter(status=Delivery.Status.SKIPPED).count() == 6
    issue.refresh_from_db()
    assert issue.status == Issue.Status.CANCELLED


def test_resuming_a_draft_is_refused(issue):
    with pytest.raises(sending.IssueStateError):
        sending.resume_issue(issue_id=issue.pk)


def test_a_scheduled_issue_goes_out_when_the_periodic_task_runs(
    issue, readers, django_capture_on_commit_callbacks
):
    sending.schedule_issue(issue_id=issue.pk, when=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        sending.run_periodic()
    assert not mail.outbox  # not due yet

    Issue.objects.filter(pk=issue.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        sending.run_periodic()
    assert len(mail.outbox) == 10
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_rows_of_a_worker_that_died_are_claimed_again_and_flagged(
    issue, readers, django_capture_on_commit_callbacks, settings
):
    settings.NEWSLETTER_BATCH_SIZE = 5
    sending.start_issue(issue_id=issue.pk)
    # A worker claimed five rows and died before sending: its lease runs out.
    claim, claimed = sending._claim(issue.pk, 5)
    assert len(claimed) == 5
    Delivery.objects.filter(claim=claim).update(lease_until=timezone.now() - timedelta(seconds=1))

    with django_capture_on_commit_callbacks(execute=True):
        sending.run_periodic()
    while sending.send_batch(issue_id=issue.pk):
        pass

    assert recipients() == sorted(r.email for r in readers)
    assert Delivery.objects.filter(maybe_duplicate=True).count() == 5
    assert Delivery.objects.filter(attempts=2).count() == 5
    assert sending.issue_progress(issue).maybe_duplicates == 5


def test_a_live_lease_is_not_claimed_twice(issue, readers, settings):
    sending.start_issue(issue_id=issue.pk)
    _, first = sending._claim(issue.pk, 6)
    _, second = sending._claim(issue.pk, 6)
    assert {r.delivery_id for r in first}.isdisjoint(r.delivery_id for r in second)
    assert len(first) + len(second) == 10


def test_progress_counts_rows_and_estimates(issue, readers, settings):
    settings.NEWSLETTER_BATCH_SIZE = 4
    sending.start_issue(issue_id=issue.pk)
    sending.send_batch(issue_id=issue.pk)
    progress = sending.issue_progress(issue)
    assert progress.counts["sent"] == 4
    assert progress.counts["queued"] == 6
    assert progress.total == 10
    assert progress.rate > 0
    assert progress.seconds_left is not None


def test_audience_is_counted_per_topic(issue, readers, main_topic, topic):
    issue.topics.add(topic)
    total, per_topic = sending.audience_by_topic(issue)
    assert total == 11
    assert dict(per_topic) == {"Advances": 10, "Breast cancer": 1}


def test_an_issue_with_nobody_to_send_to_finishes_at_once(issue):
    assert sending.start_issue(issue_id=issue.pk) == 0
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_rate_limiter_spaces_batches_on_one_timeline():
    limiter = sending.RateLimiter(rate=1000, redis_url="")
    waits = [limiter.wait_for(50) for _ in range(3)]
    assert waits[0] == 0
    assert waits[1] == pytest.approx(0.05, abs=0.02)
    assert waits[2] == pytest.approx(0.05, abs=0.02)


def test_batch_size_follows_the_esp_and_the_rate(settings):
    settings.ESP = "mailgun"
    settings.NEWSLETTER_BATCH_SIZE = 0
    settings.NEWSLETTER_MAX_RATE = 0
    assert sending.batch_size() == 1000
    settings.NEWSLETTER_BATCH_SIZE = 5000
    assert sending.batch_size() == 1000
    settings.NEWSLETTER_MAX_RATE = 20
    assert sending.batch_size() == 100
    settings.ESP = "postmark"
    settings.NEWSLETTER_BATCH_SIZE = 0
    settings.NEWSLETTER_MAX_RATE = 0
    assert sending.batch_size() == 500
    settings.ESP = "resend"  # one message per reader
    assert sending.batch_size() == 100


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_send_issue_command_sends_and_waits(issue, readers):
    # Inline, as in the embedded default: batches run when the start commits.
    out = io.StringIO()
    call_command("send_issue", issue.slug, "--wait", stdout=out)
    assert "Sending to 10 readers." in out.getvalue()
    assert "The issue is sent." in out.getvalue()
    assert len(mail.outbox) == 10


def test_send_issue_command_resumes_a_paused_issue(
    issue, readers, django_capture_on_commit_callbacks, settings
):
    settings.NEWSLETTER_BATCH_SIZE = 4
    sending.start_issue(issue_id=issue.pk)
    sending.send_batch(issue_id=issue.pk)
    sending.pause_issue(issue_id=issue.pk)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_issue", issue.slug, stdout=io.StringIO())
    assert len(mail.outbox) == 10


def test_suppressing_a_subscriber_logs_consent_and_stops_email(subscriber_factory):
    subscriber = subscriber_factory()
    assert subscriptions.suppress(subscriber_id=subscriber.pk, status="bounced", reason="x")
    assert not subscriptions.suppress(subscriber_id=subscriber.pk, status="bounced", reason="x")
    subscriber.refresh_from_db()
    assert subscriber.status == "bounced"
    assert subscriber.consent_events.filter(kind=ConsentEvent.Kind.SUPPRESSED).count() == 1


def test_time_left_is_the_rows_to_go_at_the_recent_rate():
    assert sending.estimate_seconds_left(remaining=600, rate=200.0) == 3.0
    assert sending.estimate_seconds_left(remaining=0, rate=0.0) == 0.0
    # Nothing sent recently (paused, or not started): no figure rather than a wrong one.
    assert sending.estimate_seconds_left(remaining=10, rate=0.0) is None


def test_recent_rate_counts_from_the_first_row_of_a_young_send(issue, readers):
    sending.start_issue(issue_id=issue.pk)
    now = timezone.now()
    rows = list(Delivery.objects.filter(issue=issue).order_by("pk"))
    for row in rows[:4]:
        row.status, row.sent_at = Delivery.Status.SENT, now - timedelta(seconds=2)
    Delivery.objects.bulk_update(rows[:4], ["status", "sent_at"])
    # Four rows in the last two seconds: 2 per second, not 4 per minute.
    assert sending.recent_rate(issue, now=now) == 2.0
    progress = sending.issue_progress(issue)
    assert progress.remaining == 6
    assert progress.seconds_left == pytest.approx(6 / progress.rate)
