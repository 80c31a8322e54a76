"""ESP=smtp: Django's SMTP backend against a real local SMTP server (aiosmtpd) that
requires STARTTLS: kept-open sessions, 4xx retried later, a 5xx refusal fails one row."""

import pytest
from django.core.mail import get_connection

from newsletter import esp, sending
from newsletter.esp.smtp import SmtpAdapter
from newsletter.models import Delivery, Issue, Subscriber
from tests.conftest import wait_until
from tests.factories import EducationPieceFactory, IssueFactory, SubscriberFactory, approve
from tests.smtp_server import SmtpServer, self_signed_certificate


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server(certificate, monkeypatch):
    cert, key = certificate
    # Clients trust the test certificate as they would the relay's real one.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with SmtpServer(cert, key) as server:
        yield server


def smtp_environment(server: SmtpServer, cert) -> dict[str, str]:
    return {
        "ESP": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "EMAIL_USE_TLS": "true",
        "SSL_CERT_FILE": str(cert),
    }


@pytest.fixture
def use_smtp(settings, smtp_server):
    settings.ESP = "smtp"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_USE_TLS = True
    settings.EMAIL_TIMEOUT = 10
    return smtp_server


@pytest.fixture
def issue(main_topic):
    return approve(
        IssueFactory(
            subject="Second opinions",
            with_pieces=[EducationPieceFactory(title="Why it matters", body="It can help.")],
        )
    )


def test_smtp_takes_the_per_message_path_over_django_smtp_backend(use_smtp):
    assert isinstance(esp.adapter(), SmtpAdapter)
    assert type(get_connection()).__module__ == "django.core.mail.backends.smtp"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_every_reader_gets_the_issue_once_through_the_relay_over_starttls(
    start_worker, smtp_server, certificate, issue, main_topic
):
    readers = SubscriberFactory.create_batch(60, topics=[main_topic])
    worker = start_worker(
        NEWSLETTER_SEND_CONCURRENCY="4", **smtp_environment(smtp_server, certificate[0])
    )

    sending.start_issue(issue_id=issue.pk)

    assert wait_until(lambda: Issue.objects.get(pk=issue.pk).status == "sent", 90), worker.log()
    recorder = smtp_server.recorder
    assert sorted(recorder.recipients()) == sorted(r.email for r in readers)
    assert all(item.over_tls for item in recorder.received)
    # Kept-open sessions: a few per batch (one per thread), not one per message.
    assert recorder.sessions <= 4 * 2
    urls = {item.message["List-Unsubscribe"] for item in recorder.received}
    assert len(urls) == 60
    item = recorder.received[0]
    assert item.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    delivery = Delivery.objects.get(subscriber__email=item.recipients[0].lower())
    assert delivery.esp_message_id == item.message["Message-ID"]


@pytest.mark.django_db
def test_a_recipient_the_relay_refuses_for_good_fails_that_row_only(
    use_smtp, issue, main_topic, django_capture_on_commit_callbacks
):
    SubscriberFactory.create_batch(5, topics=[main_topic])
    refused = SubscriberFactory(email="unknown@example.com", topics=[main_topic])

    with django_capture_on_commit_callbacks(execute=True):
        sending.start_issue(issue_id=issue.pk)

    assert len(use_smtp.recorder.recipients()) == 5
    assert Delivery.objects.get(subscriber=refused).status == Delivery.Status.FAILED
    assert Subscriber.objects.get(pk=refused.pk).status == Subscriber.Status.BOUNCED
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 5
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT


@pytest.mark.django_db
def test_a_try_again_later_from_the_relay_puts_the_row_back_for_a_retry(
    use_smtp, settings, issue, main_topic
):
    settings.NEWSLETTER_SEND_CONCURRENCY = 1  # one message after another, in order
    busy = SubscriberFactory(email="busy@example.com", topics=[main_topic])
    sending.start_issue(issue_id=issue.pk)

    with pytest.raises(sending.RetryLater):
        sending.send_batch(issue_id=issue.pk)

    assert Delivery.objects.get(subscriber=busy).status == Delivery.Status.QUEUED
    assert use_smtp.recorder.recipients() == []
    use_smtp.recorder.busy = False
    sending.send_batch(issue_id=issue.pk)
    assert use_smtp.recorder.recipients() == ["busy@example.com"]
    assert Delivery.objects.get(subscriber=busy).status == Delivery.Status.SENT
