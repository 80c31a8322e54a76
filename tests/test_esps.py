"""Every ESP on its own path, through the real Anymail backend, against the fake ESP.

The end-to-end test runs once per ESP on a real Celery worker over a real Redis broker:
everyone served exactly once, each with their own List-Unsubscribe. The call-count tests
hold each ESP to its batch path (one call per ESP limit of readers).
"""

import json
import math

import pytest
from django.core import mail
from django.test import Client

from newsletter import emails, esp, sending
from newsletter.esp.batch import BatchAdapter, StoredTemplateAdapter
from newsletter.esp.per_message import PerMessageAdapter
from newsletter.models import Delivery, Issue, Subscriber
from newsletter.tokens import Purpose, read_token
from project.settings import TRACKING_PER_MESSAGE
from tests.conftest import wait_until
from tests.factories import EducationPieceFactory, IssueFactory, SubscriberFactory, approve
from tests.fake_esp import FakeESP, anymail_environment

# (ESP, path it must take, the largest number of readers one call may carry)
ESPS = [
    ("mailgun", BatchAdapter, 1000),
    ("sendgrid", BatchAdapter, 1000),
    ("sparkpost", BatchAdapter, 1000),
    ("brevo", BatchAdapter, 1000),
    ("mailjet", BatchAdapter, 50),
    ("unisender_go", BatchAdapter, 500),
    ("postmark", StoredTemplateAdapter, 500),
    ("amazon_ses", StoredTemplateAdapter, 50),
    ("resend", PerMessageAdapter, 1),
    ("mandrill", PerMessageAdapter, 1),
    ("mailersend", PerMessageAdapter, 1),
]


def esp_environment(name: str, fake: FakeESP) -> dict[str, str]:
    """The environment an operator sets for this ESP, pointed at the fake."""
    return {**anymail_environment(name, fake.url), "ANYMAIL_REQUESTS_TIMEOUT": "5"}


def use_esp(settings, name: str, fake: FakeESP) -> None:
    """The same configuration in this process (for tests that send inline)."""
    env = esp_environment(name, fake)
    settings.ESP = name
    settings.EMAIL_BACKEND = f"anymail.backends.{name}.EmailBackend"
    anymail = dict(settings.ANYMAIL)
    for key, value in env.items():
        if key.startswith(name.upper() + "_"):
            anymail[key] = json.loads(value) if key.endswith("_PARAMS") else value
    if name not in TRACKING_PER_MESSAGE:
        anymail["SEND_DEFAULTS"] = {}  # as project/settings.py does for them
    settings.ANYMAIL = anymail


@pytest.fixture
def issue(main_topic):
    return approve(
        IssueFactory(
            subject="Second opinions",
            with_pieces=[EducationPieceFactory(title="Why it matters", body="It can help.")],
        )
    )


def make_readers(count: int, topic) -> list[Subscriber]:
    readers = Subscriber.objects.bulk_create(
        Subscriber(email=f"reader{n}@example.com", first_name=f"Reader{n}", status="active")
        for n in range(count)
    )
    through = Subscriber.topics.through
    through.objects.bulk_create(through(subscriber_id=r.pk, topic_id=topic.pk) for r in readers)
    return list(Subscriber.objects.filter(email__startswith="reader").order_by("pk"))


def reader_of_unsubscribe_url(url: str) -> Subscriber:
    """Whose link this is (tokens carry a timestamp, so a fresh link would differ)."""
    token = url.removeprefix(emails.link_prefix("unsubscribe")).rstrip("/")
    return read_token(token, Purpose.UNSUBSCRIBE)


def test_every_esp_named_has_the_path_it_is_documented_to_take():
    for name, path, limit in ESPS:
        adapter = esp.adapter_for(name)
        assert isinstance(adapter, path), name
        assert (adapter.batch_limit or 1) == limit, name


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(("name", "path", "limit"), ESPS, ids=[e[0] for e in ESPS])
def test_each_reader_gets_the_issue_once_with_their_own_list_unsubscribe(
    name, path, limit, start_worker, fake_esp, issue, main_topic
):
    readers = make_readers(120, main_topic)
    SubscriberFactory(email="gone@example.com", status="unsubscribed", topics=[main_topic])
    worker = start_worker(**esp_environment(name, fake_esp))

    assert sending.start_issue(issue_id=issue.pk) == 120

    assert wait_until(lambda: Issue.objects.get(pk=issue.pk).status == "sent", 120), worker.log()
    assert sorted(fake_esp.recipients()) == sorted(r.email for r in readers)  # once each
    by_email = {entry.to: entry for entry in fake_esp.accepted}
    urls = set()
    for reader in readers:
        entry = by_email[reader.email]
        url = entry.headers["List-Unsubscribe"].strip("<>")
        assert reader_of_unsubscribe_url(url) == reader, name
        urls.add(url)
        assert entry.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "List-Id" in entry.headers
        assert url in entry.text
        assert url in entry.html
        assert f"Hello {reader.first_name}," in entry.text
    rows = Delivery.objects.filter(issue=issue)
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    assert math.ceil(120 / limit) <= fake_esp.accepted_calls <= 120
    if path is not PerMessageAdapter:
        # Batch paths: the batches of the ESP's own limit and no more calls.
        assert fake_esp.accepted_calls == math.ceil(120 / limit)

    assert len(urls) == len(readers)

    leaver = readers[0]
    response = Client().post(
        by_email[leaver.email]
        .headers["List-Unsubscribe"]
        .strip("<>")
        .removeprefix("https://advances.test"),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Subscriber.objects.get(pk=leaver.pk).status == Subscriber.Status.UNSUBSCRIBED


@pytest.mark.django_db
def test_five_thousand_readers_through_sendgrid_take_five_calls(
    settings, fake_esp, issue, main_topic, django_capture_on_commit_callbacks
):
    use_esp(settings, "sendgrid", fake_esp)
    make_readers(5000, main_topic)

    with django_capture_on_commit_callbacks(execute=True):
        sending.start_issue(issue_id=issue.pk)

    assert fake_esp.stats()["unique_recipients"] == 5000
    assert fake_esp.calls <= 5
    assert Delivery.objects.filter(issue=issue, status="sent").count() == 5000


@pytest.mark.django_db
def test_five_thousand_readers_through_postmark_take_ten_batches_and_one_template(
    settings, fake_esp, issue, main_topic, django_capture_on_commit_callbacks
):
    use_esp(settings, "postmark", fake_esp)
    make_readers(5000, main_topic)

    with django_capture_on_commit_callbacks(execute=True):
        sending.start_issue(issue_id=issue.pk)

    assert fake_esp.stats()["unique_recipients"] == 5000
    assert fake_esp.accepted_calls <= 10
    # Create (after an update found no template), once for the whole send.
    assert fake_esp.template_calls <= 2
    assert fake_esp.calls <= 10 + fake_esp.template_calls
    template = fake_esp.postmark_templates[f"advances-issue-{issue.pk}"]
    assert "{{{unsubscribe_url}}}" in template["HtmlBody"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "limit"),
    [("sendgrid", 1000), ("brevo", 1000), ("mailjet", 50), ("unisender_go", 500),
     ("postmark", 500), ("amazon_ses", 50), ("resend", 100), ("mailgun", 1000)],
)  # fmt: skip
def test_the_fake_refuses_a_call_over_the_esps_limit_as_the_esp_does(
    settings, fake_esp, name, limit
):
    use_esp(settings, name, fake_esp)
    from anymail.exceptions import AnymailAPIError
    from anymail.message import AnymailMessage

    addresses = [f"r{n}@example.com" for n in range(limit + 1)]
    message = AnymailMessage(subject="Hi", body="Hello", to=addresses)
    message.merge_data = {a: {} for a in addresses}
    message.merge_headers = {a: {"List-Unsubscribe": "<https://x.test/u>"} for a in addresses}
    if name in ("amazon_ses", "postmark"):  # their batch APIs need a stored template
        fake_esp.ses_templates["t"] = {"Subject": "Hi", "Text": "Hello", "Html": "Hello"}
        fake_esp.postmark_templates["t"] = {"Subject": "Hi", "TextBody": "Hello"}
        message.template_id = "t"
        message.subject = message.body = ""
    with pytest.raises(AnymailAPIError):
        message.send()
    assert fake_esp.accepted == []


@pytest.mark.django_db
def test_a_per_message_esp_sends_over_several_kept_open_connections(
    settings, fake_esp, issue, main_topic, django_capture_on_commit_callbacks
):
    use_esp(settings, "resend", fake_esp)
    settings.NEWSLETTER_SEND_CONCURRENCY = 4
    fake_esp.delay = 0.02
    make_readers(40, main_topic)

    with django_capture_on_commit_callbacks(execute=True):
        sending.start_issue(issue_id=issue.pk)

    assert sorted(fake_esp.recipients()) == sorted(f"reader{n}@example.com" for n in range(40))
    assert fake_esp.accepted_calls == 40
    assert 1 < fake_esp.connections_seen() <= 4


@pytest.mark.django_db
def test_a_retryable_fault_mid_batch_records_what_was_sent_and_requeues_the_rest(
    settings, fake_esp, issue, main_topic
):
    use_esp(settings, "resend", fake_esp)
    settings.NEWSLETTER_SEND_CONCURRENCY = 4
    make_readers(30, main_topic)
    sending.start_issue(issue_id=issue.pk)
    fake_esp.set_fault_rate(0.2, ["500"], seed=3)

    def send_until_the_esp_fails():
        while sending.send_batch(issue_id=issue.pk):
            pass

    with pytest.raises(sending.RetryLater):
        send_until_the_esp_fails()

    sent = set(Delivery.objects.filter(status="sent").values_list("subscriber__email", flat=True))
    assert sent == set(fake_esp.recipients())  # nothing sent is left unrecorded
    fake_esp.set_fault_rate(0, [])
    while sending.send_batch(issue_id=issue.pk):
        pass
    assert sorted(fake_esp.recipients()) == sorted(f"reader{n}@example.com" for n in range(30))


@pytest.mark.django_db
def test_forcing_per_message_sends_ses_one_message_per_reader(
    settings, fake_esp, issue, main_topic, django_capture_on_commit_callbacks
):
    use_esp(settings, "amazon_ses", fake_esp)
    settings.NEWSLETTER_PER_MESSAGE = True
    make_readers(12, main_topic)

    with django_capture_on_commit_callbacks(execute=True):
        sending.start_issue(issue_id=issue.pk)

    assert fake_esp.accepted_calls == 12
    assert fake_esp.template_calls == 0
    entry = fake_esp.accepted[0]
    assert entry.headers["List-Unsubscribe"].startswith("<https://advances.test/")
    assert mail.outbox == []


@pytest.mark.django_db
def test_the_sending_threads_write_in_the_issues_language(
    settings, fake_esp, issue, main_topic, django_capture_on_commit_callbacks
):
    use_esp(settings, "resend", fake_esp)
    settings.NEWSLETTER_SEND_CONCURRENCY = 3
    Issue.objects.filter(pk=issue.pk).update(language="es")
    approve(Issue.objects.get(pk=issue.pk))
    readers = make_readers(6, main_topic)
    Subscriber.objects.filter(pk__in=[r.pk for r in readers]).update(language="es")

    with django_capture_on_commit_callbacks(execute=True):
        sending.start_issue(issue_id=issue.pk)

    assert len(fake_esp.accepted) == 6
    for entry in fake_esp.accepted:
        assert entry.headers["Content-Language"] == "es"
        assert "/es/" in entry.headers["List-Unsubscribe"]
