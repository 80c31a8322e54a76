"""Sending issues on real Celery workers over a real Redis broker, through the real
Anymail backends, to the fake ESP: exactly once, through pauses, crashes and faults."""

from collections import Counter

import pytest
from django.test import Client
from django.utils import timezone

from newsletter import sending, subscriptions, tasks
from newsletter.models import Delivery, Issue, Subscriber
from newsletter.subscriptions import Origin
from tests.conftest import wait_until
from tests.factories import EducationPieceFactory, IssueFactory, SubscriberFactory, approve

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def mailgun_env(esp, **extra):
    return {
        "ESP": "mailgun",
        "MAILGUN_API_KEY": "test-key",
        "MAILGUN_SENDER_DOMAIN": "mg.example.org",
        "MAILGUN_API_URL": esp.mailgun_api_url,
        "ANYMAIL_REQUESTS_TIMEOUT": "1",
        **extra,
    }


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


def make_readers(count, topic, **kwargs):
    return SubscriberFactory.create_batch(count, topics=[topic], **kwargs)


def status_of(issue):
    return Issue.objects.get(pk=issue.pk).status


def finished(issue):
    return wait_until(lambda: status_of(issue) == Issue.Status.SENT, timeout=90)


def settled(issue):
    """No row in flight: every batch at the ESP has been recorded."""
    return wait_until(
        lambda: not Delivery.objects.filter(issue=issue, status=Delivery.Status.SENDING).exists(),
        timeout=30,
    )


def test_every_active_reader_gets_the_issue_once_with_their_own_unsubscribe_link(
    start_worker, fake_esp, issue, main_topic, topic
):
    readers = make_readers(60, main_topic)
    SubscriberFactory(email="pending@example.com", status="pending", topics=[main_topic])
    SubscriberFactory(email="gone@example.com", status="unsubscribed", topics=[main_topic])
    SubscriberFactory(email="bounced@example.com", status="bounced", topics=[main_topic])
    SubscriberFactory(email="other@example.com", topics=[topic])
    worker = start_worker(**mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="25"))

    assert sending.start_issue(issue_id=issue.pk) == 60

    assert finished(issue), worker.log()
    assert sorted(fake_esp.recipients()) == sorted(r.email for r in readers)
    assert fake_esp.accepted_calls == 3  # 25 + 25 + 10 recipients, one call each
    by_email = {entry.to: entry for entry in fake_esp.accepted}
    unsubscribe_urls = set()
    for reader in readers:
        entry = by_email[reader.email]
        url = entry.headers["List-Unsubscribe"].strip("<>")
        assert url.startswith("https://advances.test/newsletter/unsubscribe/")
        assert url in entry.html
        assert url in entry.text
        assert entry.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "List-Id" in entry.headers
        assert f"Hello {reader.first_name}," in entry.text
        delivery = Delivery.objects.get(issue=issue, subscriber=reader)
        assert entry.metadata == {"issue": str(issue.pk), "delivery": str(delivery.pk)}
        assert delivery.esp_message_id == entry.message_id
        assert entry.tracking == {"o:tracking-clicks": "no", "o:tracking-opens": "no"}
        unsubscribe_urls.add(url)
    assert len(unsubscribe_urls) == 60

    leaver = readers[0]
    url = by_email[leaver.email].headers["List-Unsubscribe"].strip("<>")
    response = Client().post(
        url.removeprefix("https://advances.test"),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Subscriber.objects.get(pk=leaver.pk).status == Subscriber.Status.UNSUBSCRIBED


def test_someone_unsubscribing_mid_send_is_skipped(start_worker, fake_esp, issue, main_topic):
    readers = make_readers(40, main_topic)
    fake_esp.delay = 0.3
    start_worker(concurrency=1, **mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="10"))
    sending.start_issue(issue_id=issue.pk)

    assert wait_until(lambda: fake_esp.accepted_calls >= 1)
    leaver = readers[-1]  # in the last batch
    subscriptions.unsubscribe(subscriber=leaver, origin=Origin())

    assert finished(issue)
    assert leaver.email not in fake_esp.recipients()
    assert len(fake_esp.recipients()) == 39
    assert Delivery.objects.get(subscriber=leaver).status == Delivery.Status.SKIPPED


def test_pause_then_resume_sends_to_everyone_exactly_once(
    start_worker, fake_esp, issue, main_topic
):
    readers = make_readers(60, main_topic)
    fake_esp.delay = 0.2
    start_worker(**mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="10"))
    sending.start_issue(issue_id=issue.pk)
    assert wait_until(lambda: fake_esp.accepted_calls >= 1)

    assert sending.pause_issue(issue_id=issue.pk)
    assert settled(issue)
    sent_while_paused = len(fake_esp.recipients())
    assert sent_while_paused < 60
    assert status_of(issue) == Issue.Status.PAUSED

    sending.resume_issue(issue_id=issue.pk)
    assert finished(issue)
    assert sorted(fake_esp.recipients()) == sorted(r.email for r in readers)


def test_cancel_stops_the_send(start_worker, fake_esp, issue, main_topic):
    make_readers(60, main_topic)
    fake_esp.delay = 0.2
    start_worker(**mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="10"))
    sending.start_issue(issue_id=issue.pk)
    assert wait_until(lambda: fake_esp.accepted_calls >= 1)

    assert sending.cancel_issue(issue_id=issue.pk)
    assert settled(issue)
    count = len(fake_esp.recipients())
    assert not wait_until(lambda: len(fake_esp.recipients()) > count, timeout=2)
    assert count < 60
    assert max(Counter(fake_esp.recipients()).values()) == 1
    assert status_of(issue) == Issue.Status.CANCELLED


def test_a_worker_killed_mid_send_leaves_nobody_out_and_duplicates_at_most_one_call(
    start_worker, fake_esp, issue, main_topic
):
    readers = make_readers(80, main_topic)
    fake_esp.delay = 0.5
    env = mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="10", NEWSLETTER_LEASE_SECONDS="3")
    worker = start_worker(concurrency=1, **env)
    sending.start_issue(issue_id=issue.pk)
    assert wait_until(lambda: fake_esp.accepted_calls >= 2)

    worker.kill()  # SIGKILL, mid-batch: a call may be at the ESP unrecorded
    start_worker(concurrency=2, **env)

    # The periodic task (beat) takes back the dead worker's rows once their lease ends.
    def beat_then_check():
        tasks.run_periodic.delay()
        return status_of(issue) == Issue.Status.SENT

    assert wait_until(beat_then_check, timeout=90, interval=1.5)

    received = Counter(fake_esp.recipients())
    assert set(received) == {r.email for r in readers}
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= 10
    flagged = set(
        Delivery.objects.filter(maybe_duplicate=True).values_list("subscriber__email", flat=True)
    )
    assert {email for email, n in received.items() if n > 1} <= flagged


def test_injected_esp_faults_end_with_everyone_served_once(
    start_worker, fake_esp, issue, main_topic
):
    readers = make_readers(100, main_topic)
    fake_esp.timeout_seconds = 2.0  # longer than the client's 1 s timeout
    fake_esp.set_fault_rate(0.2, ["429", "500", "timeout", "drop"], seed=7)
    worker = start_worker(**mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="10"))

    sending.start_issue(issue_id=issue.pk)

    assert finished(issue), worker.log()
    assert fake_esp.calls > fake_esp.accepted_calls  # faults did happen
    assert sorted(fake_esp.recipients()) == sorted(r.email for r in readers)
    assert not Delivery.objects.exclude(status=Delivery.Status.SENT).exists()


def test_an_esp_that_refuses_for_good_pauses_the_issue_without_losing_its_place(
    start_worker, fake_esp, issue, main_topic
):
    make_readers(30, main_topic)
    start_worker(
        **mailgun_env(fake_esp, MAILGUN_API_KEY="wrong-key", NEWSLETTER_BATCH_SIZE="5",
                      NEWSLETTER_MAX_ERRORS="2")
    )  # fmt: skip
    sending.start_issue(issue_id=issue.pk)

    assert wait_until(lambda: status_of(issue) == Issue.Status.PAUSED)
    assert settled(issue)
    issue.refresh_from_db()
    assert "401" in issue.last_error or "Invalid private key" in issue.last_error
    assert not fake_esp.recipients()
    assert Delivery.objects.filter(status=Delivery.Status.QUEUED).exists()  # its place


def test_a_scheduled_issue_goes_out_when_the_periodic_task_runs(
    start_worker, fake_esp, issue, main_topic
):
    readers = make_readers(12, main_topic)
    start_worker(**mailgun_env(fake_esp))
    sending.schedule_issue(issue_id=issue.pk, when=timezone.now() + timezone.timedelta(seconds=1))
    assert wait_until(lambda: timezone.now() > Issue.objects.get(pk=issue.pk).scheduled_at)

    tasks.run_periodic.delay()

    assert finished(issue)
    assert sorted(fake_esp.recipients()) == sorted(r.email for r in readers)


def test_postmark_batches_through_its_stored_template_each_reader_once(
    start_worker, fake_esp, issue, main_topic
):
    readers = make_readers(20, main_topic)
    invalid = SubscriberFactory(email="invalid-1@example.com", topics=[main_topic])
    start_worker(
        ESP="postmark",
        POSTMARK_SERVER_TOKEN="test-token",
        POSTMARK_API_URL=fake_esp.postmark_api_url,
        NEWSLETTER_BATCH_SIZE="8",
    )

    sending.start_issue(issue_id=issue.pk)

    assert finished(issue)
    assert sorted(fake_esp.recipients()) == sorted(r.email for r in readers)
    # 21 readers in batches of 8, one batchWithTemplates call each; the invalid address
    # is refused inside its batch, as Postmark does.
    assert fake_esp.accepted_calls == 3
    assert list(fake_esp.postmark_templates) == [f"advances-issue-{issue.pk}"]
    for entry in fake_esp.accepted:
        assert entry.esp == "postmark"
        assert entry.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert entry.headers["List-Unsubscribe"].strip("<>") in entry.html
        delivery = Delivery.objects.get(subscriber__email=entry.to)
        assert entry.metadata["delivery"] == str(delivery.pk)
        assert delivery.esp_message_id == entry.message_id
    failed = Delivery.objects.get(subscriber=invalid)
    assert failed.status == Delivery.Status.FAILED
    assert Subscriber.objects.get(pk=invalid.pk).status == Subscriber.Status.BOUNCED
