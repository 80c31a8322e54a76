"""ESP events: the real Anymail webhook views receive realistic Mailgun and Postmark
payloads over HTTP, record each event once and suppress whom they must."""

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from newsletter import sending, subscriptions, tracking
from newsletter.models import (
    ConsentEvent,
    Delivery,
    DeliveryEvent,
    Issue,
    ListSnapshot,
    Subscriber,
)
from tests.factories import (
    EducationPieceFactory,
    IssueFactory,
    SubscriberFactory,
    UserFactory,
    approve,
)

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "esp-hooks:7c1d0f6a-long-random-password"
MAILGUN_SIGNING_KEY = "mailgun-webhook-signing-key"
MAILGUN_URL = "/anymail/mailgun/tracking/"
POSTMARK_URL = "/anymail/postmark/tracking/"


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }
    return settings


def basic_auth(secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


# --- Realistic payloads (shapes from the ESPs' webhook documentation) --------------------


def mailgun_event(
    event: str,
    recipient: str,
    *,
    delivery: Delivery | None = None,
    message_id: str = "20261125172540.1.ABCDEF@mg.example.org",
    token: str | None = None,
    signing_key: str = MAILGUN_SIGNING_KEY,
    **event_data: Any,
) -> dict[str, Any]:
    timestamp = str(int(time.time()))
    token = token or uuid.uuid4().hex * 2
    signature = hmac.new(
        signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    data: dict[str, Any] = {
        "id": uuid.uuid4().hex[:22],
        "event": event,
        "timestamp": time.time(),
        "log-level": "info",
        "recipient": recipient,
        "recipient-domain": recipient.split("@")[-1],
        "message": {
            "headers": {
                "to": recipient,
                "message-id": message_id,
                "from": "Advances <advances@mg.example.org>",
                "subject": "Getting a breast cancer second opinion",
            },
            "attachments": [],
            "size": 18342,
        },
        "tags": [],
        "campaigns": [],
        "user-variables": {"delivery": str(delivery.pk)} if delivery else {},
        "flags": {"is-routed": False, "is-authenticated": True, "is-test-mode": False},
        "envelope": {"transport": "smtp", "sender": "bounce@mg.example.org"},
    }
    data.update(event_data)
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": data,
    }


def mailgun_failure(recipient: str, *, severity: str, **kwargs: Any) -> dict[str, Any]:
    permanent = severity == "permanent"
    fields: dict[str, Any] = {
        "log-level": "error" if permanent else "warn",
        "delivery-status": {
            "code": 550 if permanent else 452,
            "message": (
                f"5.1.1 <{recipient}>: Recipient address rejected: User unknown"
                if permanent
                else "4.2.2 The email account that you tried to reach is over quota."
            ),
            "description": "",
            "attempt-no": 1,
            "tls": True,
            "mx-host": "mx.example.net",
        },
    }
    return mailgun_event(
        "failed",
        recipient,
        severity=severity,
        reason="bounce" if permanent else "generic",
        **fields,
        **kwargs,
    )


def postmark_event(record_type: str, recipient: str, **fields: Any) -> dict[str, Any]:
    now = timezone.now().isoformat().replace("+00:00", "Z")
    event: dict[str, Any] = {
        "RecordType": record_type,
        "MessageID": str(uuid.uuid4()),
        "ServerID": 23,
        "MessageStream": "broadcast",
        "Tag": "",
        "Metadata": {},
    }
    if record_type == "Delivery":
        event.update(Recipient=recipient, DeliveredAt=now, Details="Test delivery webhook details")
    elif record_type in ("Bounce", "SpamComplaint"):
        event.update(
            ID=int(uuid.uuid4().int % 10**10),
            Type="HardBounce" if record_type == "Bounce" else "SpamComplaint",
            TypeCode=1 if record_type == "Bounce" else 512,
            Name="Hard bounce" if record_type == "Bounce" else "Spam complaint",
            Email=recipient,
            From="advances@example.org",
            BouncedAt=now,
            Description="The server was unable to deliver your message (ex: unknown user).",
            Details="smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            DumpAvailable=True,
            Inactive=True,
            CanActivate=True,
            Subject="Getting a breast cancer second opinion",
        )
    elif record_type == "SubscriptionChange":
        event.update(
            Recipient=recipient,
            ChangedAt=now,
            Origin="Recipient",
            SuppressSending=True,
            SuppressionReason="ManualSuppression",
        )
    event.update(fields)
    return event


def post_mailgun(client: Client, payload: Any, **extra: Any) -> Any:
    return client.post(
        MAILGUN_URL, data=json.dumps(payload), content_type="application/json", **extra
    )


def post_postmark(client: Client, payload: Any, **extra: Any) -> Any:
    return client.post(
        POSTMARK_URL, data=json.dumps(payload), content_type="application/json", **extra
    )


@pytest.fixture
def issue(main_topic):
    return approve(
        IssueFactory(
            status=Issue.Status.SENT,
            with_pieces=[
                EducationPieceFactory(title="Why it matters", body="It can change a plan.")
            ],
        )
    )


@pytest.fixture
def reader(main_topic):
    return SubscriberFactory(email="reader@example.org", topics=[main_topic])


@pytest.fixture
def delivery(issue, reader):
    return Delivery.objects.create(
        issue=issue,
        subscriber=reader,
        status=Delivery.Status.SENT,
        esp_message_id="<20261125172540.1.ABCDEF@mg.example.org>",
        sent_at=timezone.now(),
    )


@pytest.fixture
def client_posting(client, django_capture_on_commit_callbacks):
    """Post webhooks with the task that applies each event run after commit."""

    def post(send, payload, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return send(client, payload, **{**basic_auth(), **extra})

    return post


def status_of(subscriber: Subscriber) -> str:
    subscriber.refresh_from_db()
    return subscriber.status


# --- Each event does what it says --------------------------------------------------------


def test_a_mailgun_hard_bounce_suppresses_the_reader_and_logs_why(client_posting, delivery, reader):
    response = client_posting(
        post_mailgun, mailgun_failure(reader.email, severity="permanent", delivery=delivery)
    )

    assert response.status_code == 200
    assert status_of(reader) == "bounced"
    event = DeliveryEvent.objects.get()
    assert (event.esp, event.kind, event.delivery, event.subscriber) == (
        "Mailgun",
        "bounced",
        delivery,
        reader,
    )
    assert event.applied_at is not None
    logged = reader.consent_events.get(kind=ConsentEvent.Kind.SUPPRESSED)
    assert logged.detail["status"] == "bounced"
    assert logged.source == "Mailgun webhook"


def test_a_mailgun_complaint_marks_the_reader_complained(client_posting, delivery, reader):
    client_posting(post_mailgun, mailgun_event("complained", reader.email, delivery=delivery))
    assert status_of(reader) == "complained"
    assert reader.consent_events.filter(kind=ConsentEvent.Kind.SUPPRESSED).count() == 1


def test_an_unsubscribe_reported_by_the_esp_unsubscribes_the_reader(
    client_posting, delivery, reader
):
    client_posting(post_mailgun, mailgun_event("unsubscribed", reader.email, delivery=delivery))
    assert status_of(reader) == "unsubscribed"
    logged = reader.consent_events.get(kind=ConsentEvent.Kind.UNSUBSCRIBE)
    assert logged.source == "Mailgun webhook"


def test_a_delivered_event_is_recorded_and_changes_nothing(client_posting, delivery, reader):
    client_posting(post_mailgun, mailgun_event("delivered", reader.email, delivery=delivery))
    assert status_of(reader) == "active"
    assert DeliveryEvent.objects.get().kind == "delivered"
    assert not reader.consent_events.filter(kind=ConsentEvent.Kind.SUPPRESSED).exists()


def test_soft_bounces_suppress_only_after_the_limit_of_distinct_messages(
    client_posting, reader, settings
):
    settings.NEWSLETTER_SOFT_BOUNCE_LIMIT = 3
    for n in range(2):
        client_posting(
            post_mailgun,
            mailgun_failure(reader.email, severity="temporary", message_id=f"{n}@mg.example.org"),
        )
    # Mailgun retries one message many times: its retries are one message, not three.
    for _ in range(3):
        client_posting(
            post_mailgun,
            mailgun_failure(reader.email, severity="temporary", message_id="1@mg.example.org"),
        )
    assert status_of(reader) == "active"
    assert DeliveryEvent.objects.filter(kind="soft_bounced").count() == 5

    client_posting(
        post_mailgun,
        mailgun_failure(reader.email, severity="temporary", message_id="2@mg.example.org"),
    )
    assert status_of(reader) == "bounced"
    logged = reader.consent_events.get(kind=ConsentEvent.Kind.SUPPRESSED)
    assert "3 messages soft-bounced within 30 days" in logged.detail["reason"]


def test_soft_bounces_older_than_the_window_do_not_count(client_posting, reader, settings):
    settings.NEWSLETTER_SOFT_BOUNCE_LIMIT = 2
    settings.NEWSLETTER_SOFT_BOUNCE_DAYS = 30
    old = mailgun_failure(reader.email, severity="temporary", message_id="old@mg.example.org")
    old["event-data"]["timestamp"] = time.time() - 31 * 24 * 3600
    client_posting(post_mailgun, old)
    client_posting(
        post_mailgun,
        mailgun_failure(reader.email, severity="temporary", message_id="new@mg.example.org"),
    )
    assert status_of(reader) == "active"


def test_postmark_hard_bounce_complaint_and_unsubscribe(client_posting, issue, main_topic):
    bounced, complained, leaving = SubscriberFactory.create_batch(3, topics=[main_topic])
    for subscriber, record in [
        (bounced, "Bounce"),
        (complained, "SpamComplaint"),
        (leaving, "SubscriptionChange"),
    ]:
        row = Delivery.objects.create(issue=issue, subscriber=subscriber, status="sent")
        response = client_posting(
            post_postmark,
            postmark_event(
                record, subscriber.email, Metadata={"issue": str(issue.pk), "delivery": str(row.pk)}
            ),
        )
        assert response.status_code == 200
    assert [status_of(s) for s in (bounced, complained, leaving)] == [
        "bounced",
        "complained",
        "unsubscribed",
    ]
    assert set(DeliveryEvent.objects.values_list("esp", flat=True)) == {"Postmark"}
    assert DeliveryEvent.objects.filter(delivery__issue=issue).count() == 3


def test_a_postmark_soft_bounce_is_counted_not_suppressed_at_once(client_posting, reader):
    client_posting(
        post_postmark,
        postmark_event(
            "Bounce", reader.email, Type="SoftBounce", TypeCode=4096, Name="Soft bounce"
        ),
    )
    assert status_of(reader) == "active"
    assert DeliveryEvent.objects.get().kind == "soft_bounced"


def test_an_event_without_metadata_maps_through_the_message_id(client_posting, issue, reader):
    row = Delivery.objects.create(
        issue=issue,
        subscriber=reader,
        status="sent",
        esp_message_id="b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    )
    client_posting(
        post_postmark,
        postmark_event("Delivery", reader.email, MessageID="b7bc2f4a-e38e-4336-af7d-e6c392c2f817"),
    )
    assert DeliveryEvent.objects.get().delivery == row


def test_a_bounced_confirmation_email_suppresses_the_pending_address(client_posting):
    pending = SubscriberFactory(email="typo@exampel.org", status="pending")
    client_posting(post_postmark, postmark_event("Bounce", "Typo@Exampel.org"))
    assert status_of(pending) == "bounced"
    assert DeliveryEvent.objects.get().delivery is None


def test_a_later_bounce_leaves_a_complaint_in_place(client_posting, delivery, reader):
    client_posting(post_mailgun, mailgun_event("complained", reader.email, delivery=delivery))
    client_posting(
        post_mailgun, mailgun_failure(reader.email, severity="permanent", delivery=delivery)
    )
    assert status_of(reader) == "complained"


def test_an_event_about_an_unknown_address_is_recorded_and_touches_nobody(client_posting, reader):
    response = client_posting(post_postmark, postmark_event("Bounce", "stranger@example.org"))
    assert response.status_code == 200
    assert DeliveryEvent.objects.get().subscriber is None
    assert status_of(reader) == "active"


def test_no_address_is_stored_with_an_event(client_posting, delivery, reader):
    client_posting(post_mailgun, mailgun_event("delivered", reader.email, delivery=delivery))
    event = DeliveryEvent.objects.values().get()
    assert all(reader.email not in str(value) for value in event.values())


# --- Replays, and who may post -----------------------------------------------------------


def test_a_replayed_mailgun_event_counts_once(client_posting, delivery, reader):
    payload = mailgun_failure(reader.email, severity="permanent", delivery=delivery)
    for _ in range(3):
        assert client_posting(post_mailgun, payload).status_code == 200
    assert DeliveryEvent.objects.count() == 1
    assert reader.consent_events.filter(kind=ConsentEvent.Kind.SUPPRESSED).count() == 1


def test_a_replayed_postmark_event_without_an_id_counts_once(client_posting, delivery, reader):
    payload = postmark_event("Delivery", reader.email, Metadata={"delivery": str(delivery.pk)})
    assert "ID" not in payload
    client_posting(post_postmark, payload)
    client_posting(post_postmark, payload)
    assert DeliveryEvent.objects.count() == 1


@pytest.mark.parametrize(
    "auth",
    [
        {},
        basic_auth("esp-hooks:wrong-password"),
        basic_auth("someone:" + WEBHOOK_SECRET.split(":")[1]),
        {"HTTP_AUTHORIZATION": "Basic not-base64!"},
        {"HTTP_AUTHORIZATION": "Bearer " + WEBHOOK_SECRET},
    ],
    ids=["missing", "wrong-password", "wrong-user", "garbage", "not-basic"],
)
@pytest.mark.parametrize("esp", ["mailgun", "postmark"])
def test_a_wrong_or_missing_secret_is_refused_and_nothing_recorded(client, reader, auth, esp):
    if esp == "mailgun":
        response = post_mailgun(client, mailgun_event("complained", reader.email), **auth)
    else:
        response = post_postmark(client, postmark_event("SpamComplaint", reader.email), **auth)
    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()
    assert status_of(reader) == "active"


def test_a_mailgun_event_with_a_forged_signature_is_refused(client_posting, reader):
    payload = mailgun_event("complained", reader.email, signing_key="not-the-key")
    assert client_posting(post_mailgun, payload).status_code == 400
    assert not DeliveryEvent.objects.exists()
    assert status_of(reader) == "active"


def test_without_a_configured_secret_every_event_is_refused(client, reader, settings):
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "WEBHOOK_SECRET"}
    response = post_postmark(client, postmark_event("SpamComplaint", reader.email))
    assert response.status_code == 404
    assert not DeliveryEvent.objects.exists()


def test_mailgun_without_its_signing_key_is_refused_not_a_500(client, reader, settings):
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if not k.startswith("MAILGUN_")}
    response = post_mailgun(client, mailgun_event("complained", reader.email), **basic_auth())
    assert response.status_code == 404
    assert status_of(reader) == "active"


@pytest.mark.parametrize(
    ("url", "body", "content_type"),
    [
        (POSTMARK_URL, "not json", "application/json"),
        (POSTMARK_URL, "[1, 2]", "application/json"),
        (
            POSTMARK_URL,
            '{"RecordType": "Bounce", "BouncedAt": 7, "Metadata": "x"}',
            "application/json",
        ),
        (POSTMARK_URL, '{"FromFull": {}}', "application/json"),
        (POSTMARK_URL, "\xff\xfe", "application/json"),
        (MAILGUN_URL, "event=delivered", "application/x-www-form-urlencoded"),
        (MAILGUN_URL, '{"signature": 1}', "application/json"),
    ],
)
def test_a_payload_that_is_not_the_esps_format_is_a_400(client, url, body, content_type):
    response = client.post(url, data=body, content_type=content_type, **basic_auth())
    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()


def test_the_webhook_refuses_get(client):
    assert client.get(POSTMARK_URL, **basic_auth()).status_code == 405


def test_nul_characters_in_a_payload_are_stored_safely(client_posting, reader):
    payload = postmark_event("Bounce", reader.email, Details="550\x00 user unknown", ID="7\x00")
    assert client_posting(post_postmark, payload).status_code == 200
    assert "\x00" not in DeliveryEvent.objects.get().description


# --- Over real HTTP, end to end ----------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_bounce_and_complaint_posted_over_http_suppress_and_show_on_the_issue(
    live_server, fake_esp, settings, main_topic
):
    """Send an issue through the real Mailgun backend to the fake ESP, then post the
    ESP's bounce and complaint for two of its readers to the live server: they are
    suppressed, the issue's figures show them, and the next issue skips them."""
    settings.ESP = "mailgun"
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "MAILGUN_API_KEY": "test-key",
        "MAILGUN_API_URL": fake_esp.mailgun_api_url,
        "MAILGUN_SENDER_DOMAIN": "mg.example.org",
    }
    readers = SubscriberFactory.create_batch(5, topics=[main_topic])
    first = approve(IssueFactory(with_pieces=[EducationPieceFactory()]))
    sending.start_issue(issue_id=first.pk)
    accepted = {entry.to: entry for entry in fake_esp.accepted}
    assert sorted(accepted) == sorted(r.email for r in readers)

    bouncing, complaining = readers[0], readers[1]
    auth = tuple(WEBHOOK_SECRET.split(":", 1))
    for payload in [
        mailgun_failure(
            bouncing.email,
            severity="permanent",
            message_id=accepted[bouncing.email].message_id.strip("<>"),
            **{"user-variables": accepted[bouncing.email].metadata},
        ),
        mailgun_event(
            "complained",
            complaining.email,
            **{"user-variables": accepted[complaining.email].metadata},
        ),
    ]:
        response = requests.post(live_server.url + MAILGUN_URL, json=payload, auth=auth, timeout=10)
        assert response.status_code == 200, response.text
    for reader in readers[2:]:
        payload = mailgun_event(
            "delivered", reader.email, **{"user-variables": accepted[reader.email].metadata}
        )
        requests.post(live_server.url + MAILGUN_URL, json=payload, auth=auth, timeout=10)

    assert status_of(bouncing) == "bounced"
    assert status_of(complaining) == "complained"
    outcome = tracking.issue_outcome(first)
    assert outcome.sent == 5
    assert (
        outcome.counts["delivered"],
        outcome.counts["bounced"],
        outcome.counts["complained"],
    ) == (3, 1, 1)

    fake_esp.reset()
    second = approve(IssueFactory(with_pieces=[EducationPieceFactory()]))
    sending.start_issue(issue_id=second.pk)
    assert sorted(entry.to for entry in fake_esp.accepted) == sorted(r.email for r in readers[2:])

    # Coming back means double opt-in again: a confirmation email, through the ESP.
    fake_esp.reset()
    subscriptions.subscribe(
        email=bouncing.email, first_name="", topics=[main_topic], origin=subscriptions.Origin()
    )
    assert status_of(bouncing) == "pending"
    assert fake_esp.recipients() == [bouncing.email]


# --- What publishers see -----------------------------------------------------------------


def test_issue_outcome_counts_readers_not_events(issue, main_topic):
    reader = SubscriberFactory(topics=[main_topic])
    row = Delivery.objects.create(issue=issue, subscriber=reader, status="sent")
    for n in range(3):
        DeliveryEvent.objects.create(
            esp="Postmark",
            event_key=f"k{n}",
            kind="soft_bounced",
            esp_event_type="deferred",
            delivery=row,
            occurred_at=timezone.now(),
        )
    outcome = tracking.issue_outcome(issue)
    assert (outcome.sent, outcome.counts["soft_bounced"]) == (1, 1)
    assert outcome.rate("soft_bounced") == 1.0


def test_opens_and_clicks_are_shown_only_when_tracking_is_on(issue, settings):
    settings.NEWSLETTER_TRACKING = False
    assert "opened" not in tracking.issue_outcome(issue).counts
    settings.NEWSLETTER_TRACKING = True
    assert {"opened", "clicked"} <= set(tracking.issue_outcome(issue).counts)


def test_list_health_reports_flows_per_month_and_rates_per_issue(issue, main_topic):
    issue.send_started_at = timezone.now()
    issue.save()
    readers = SubscriberFactory.create_batch(4, topics=[main_topic])
    for n, reader in enumerate(readers):
        row = Delivery.objects.create(issue=issue, subscriber=reader, status="sent")
        if n == 0:
            DeliveryEvent.objects.create(
                esp="Mailgun",
                event_key="c",
                kind="complained",
                esp_event_type="complained",
                delivery=row,
                occurred_at=timezone.now(),
            )
    subscriptions.confirm_subscription(
        subscriber=SubscriberFactory(status="pending"), origin=subscriptions.Origin()
    )
    subscriptions.unsubscribe(subscriber=readers[1], origin=subscriptions.Origin())

    health = tracking.list_health()

    this_month = health.months[-1]
    assert (this_month.joined, this_month.unsubscribed) == (1, 1)
    assert len(health.months) == 12
    [rates] = health.issues
    assert (rates.sent, rates.complained, rates.complaint_rate) == (4, 1, 0.25)
    assert health.today["active"] == 4


def test_a_snapshot_a_day_records_the_list_by_status(main_topic):
    SubscriberFactory.create_batch(2, topics=[main_topic])
    SubscriberFactory(status="bounced")
    tracking.take_snapshot()
    snapshot = tracking.take_snapshot()  # again the same day: replaced, not added
    assert (snapshot.counts["active"], snapshot.counts["bounced"]) == (2, 1)
    assert tracking.list_health().snapshots == [snapshot]


# --- Settings that leave webhooks open ---------------------------------------------------


def check_ids(settings) -> set[str | None]:
    from newsletter.checks import check_webhook_secret

    return {warning.id for warning in check_webhook_secret(None)}


def test_a_system_check_warns_without_a_webhook_secret_outside_debug(settings):
    settings.DEBUG = False
    settings.ANYMAIL = {}
    assert "newsletter.W001" in check_ids(settings)
    settings.DEBUG = True
    assert check_ids(settings) == set()


def test_a_system_check_warns_when_mailgun_has_no_signing_key(settings):
    settings.DEBUG = False
    settings.ESP = "mailgun"
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    assert check_ids(settings) == {"newsletter.W003"}
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": "k"}
    assert check_ids(settings) == set()


def test_the_check_runs_with_manage_py_check(settings):
    settings.DEBUG = False
    settings.ANYMAIL = {}
    with pytest.raises(Exception, match=r"newsletter\.W001"):
        call_command("check", "--fail-level", "WARNING")


def test_recorded_time_defaults_to_now_for_an_event_without_one(client_posting, reader):
    payload = postmark_event("Delivery", reader.email)
    del payload["DeliveredAt"]
    client_posting(post_postmark, payload)
    assert timezone.now() - DeliveryEvent.objects.get().occurred_at < timedelta(minutes=1)


# --- The admin pages ---------------------------------------------------------------------


def staff_client(client: Client, group: str) -> Client:
    client.force_login(UserFactory.create(groups=[group]))
    return client


def test_the_progress_page_shows_the_issues_outcome_once_as_numbers_and_bars(
    client, client_posting, issue, main_topic
):
    readers = SubscriberFactory.create_batch(4, topics=[main_topic])
    rows = [Delivery.objects.create(issue=issue, subscriber=r, status="sent") for r in readers]
    client_posting(
        post_mailgun, mailgun_failure(readers[0].email, severity="permanent", delivery=rows[0])
    )
    client_posting(post_mailgun, mailgun_event("complained", readers[1].email, delivery=rows[1]))

    page = staff_client(client, "Editors").get(
        reverse("admin:newsletter_issue_progress", args=[issue.pk])
    )
    html = page.content.decode()

    assert page.status_code == 200
    assert "<meter" in html
    assert "out of 4 sent" in html
    assert re.search(
        r"Bounced \(hard\)</th><td><a [^>]+>1</a></td><td><span[^>]*>25\.00</span>%", html
    )
    assert re.search(r"Complained</th><td><a [^>]+>1</a></td><td><span[^>]*>25\.00</span>%", html)
    assert html.count("Bounced (hard)") == 1
    assert "over 0.3%" in html
    assert "Opened" not in html  # tracking is off


def test_the_list_health_page_shows_flows_and_rates_against_the_line(
    client, client_posting, issue, main_topic
):
    issue.send_started_at = timezone.now()
    issue.save()
    reader = SubscriberFactory(topics=[main_topic])
    row = Delivery.objects.create(issue=issue, subscriber=reader, status="sent")
    client_posting(post_mailgun, mailgun_event("complained", reader.email, delivery=row))
    tracking.take_snapshot()

    page = staff_client(client, "Publishers").get(reverse("admin:newsletter_subscriber_health"))
    html = page.content.decode()

    assert page.status_code == 200
    assert (
        html.count("<svg xmlns='http://www.w3.org/2000/svg' role='img'") == 2
    )  # one snapshot: no line over time yet
    assert "History starts on" in html
    assert "100.00% — over the line" in html
    assert "0.3% line" in html
    assert f"{timezone.localdate():%B %Y}" in html


def test_editors_cannot_see_list_health(client):
    page = staff_client(client, "Editors").get(reverse("admin:newsletter_subscriber_health"))
    assert page.status_code == 403


def test_chart_text_from_the_database_is_escaped(client, main_topic):
    IssueFactory(
        subject="<script>alert(1)</script>",
        slug="x-script",
        status=Issue.Status.SENT,
        send_started_at=timezone.now(),
    )
    for n in range(2):
        day = timezone.localdate() - timedelta(days=n)
        ListSnapshot.objects.create(day=day, counts={"active": n})
    html = staff_client(client, "Publishers").get(reverse("admin:newsletter_subscriber_health"))
    assert "<script>alert(1)" not in html.content.decode()
    assert html.content.decode().count("role='img'") == 3


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_time_past_what_a_database_holds_is_recorded_as_now(client_posting, reader, when):
    payload = postmark_event("Delivery", reader.email, DeliveredAt=when)
    assert client_posting(post_postmark, payload).status_code == 200
    assert timezone.now() - DeliveryEvent.objects.get().occurred_at < timedelta(minutes=1)


def test_operators_can_browse_esp_events_read_only(client, client_posting, delivery, reader):
    client_posting(post_mailgun, mailgun_event("delivered", reader.email, delivery=delivery))
    client.force_login(UserFactory.create(is_superuser=True))
    page = client.get(reverse("admin:newsletter_deliveryevent_changelist"))
    assert page.status_code == 200
    assert "Delivered" in page.content.decode()
    event = DeliveryEvent.objects.get()
    change = client.post(
        reverse("admin:newsletter_deliveryevent_change", args=[event.pk]), {"kind": "bounced"}
    )
    assert change.status_code == 403
    event.refresh_from_db()
    assert event.kind == "delivered"
