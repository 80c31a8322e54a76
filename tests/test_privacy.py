import hashlib
import json
from datetime import timedelta
from email import message_from_bytes

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from newsletter import privacy, subscriptions
from newsletter.models import (
    ConsentEvent,
    Delivery,
    DeliveryEvent,
    Subscriber,
    SuppressedAddress,
)
from newsletter.tokens import Purpose, make_token
from tests.factories import IssueFactory, UserFactory

pytestmark = pytest.mark.django_db

ORIGIN = subscriptions.Origin(ip_address="203.0.113.9", user_agent="Firefox/130", source="/")


@pytest.fixture
def ann(subscriber_factory, topic, main_topic):
    subscriber = subscriber_factory(
        email="ann@example.com", first_name="Ann", topics=[main_topic, topic]
    )
    ConsentEvent.objects.create(
        subscriber=subscriber,
        kind=ConsentEvent.Kind.SIGNUP,
        ip_address="203.0.113.9",
        user_agent="Firefox/130",
        source="/",
        wording=subscriptions.CONSENT_WORDING,
        detail={"topics": ["advances"], "note": "typed ann@example.com by hand"},
    )
    issue = IssueFactory(subject="Second opinions")
    delivery = Delivery.objects.create(
        issue=issue, subscriber=subscriber, status=Delivery.Status.SENT, attempts=1
    )
    DeliveryEvent.objects.create(
        esp="Postmark",
        event_key="id:41",
        kind=DeliveryEvent.Kind.SOFT_BOUNCED,
        esp_event_type="deferred",
        delivery=delivery,
        subscriber=subscriber,
        message_id="m-41",
        description="452 4.2.2 <ann@example.com>: mailbox full",
        occurred_at=timezone.now(),
    )
    # About her confirmation email, not an issue: found through the subscriber.
    DeliveryEvent.objects.create(
        esp="Postmark",
        event_key="id:40",
        kind=DeliveryEvent.Kind.DELIVERED,
        esp_event_type="delivered",
        subscriber=subscriber,
        message_id="m-40",
        description="250 OK",
        occurred_at=timezone.now() - timedelta(days=1),
    )
    return subscriber


def preferences_url(subscriber: Subscriber) -> str:
    return reverse("newsletter:preferences", args=[make_token(subscriber, Purpose.PREFERENCES)])


# --- Export -----------------------------------------------------------------------------


def test_export_holds_subscriber_topics_consent_log_and_deliveries_but_no_secret(ann):
    data = json.loads(privacy.subscriber_export_json(subscriber=ann))

    assert data["subscriber"]["email"] == "ann@example.com"
    assert data["subscriber"]["first_name"] == "Ann"
    assert data["subscriber"]["status"] == "active"
    assert {topic["slug"] for topic in data["topics"]} == {"advances", "breast-cancer"}
    assert data["consent_log"][0]["kind"] == "signup"
    assert data["consent_log"][0]["ip_address"] == "203.0.113.9"
    assert data["consent_log"][0]["wording"] == subscriptions.CONSENT_WORDING
    assert data["deliveries"] == [
        {
            "issue": "Second opinions",
            "issue_slug": ann.deliveries.get().issue.slug,
            "status": "sent",
            "sent_at": None,
            "attempts": 1,
        }
    ]
    assert [(e["kind"], e["issue_slug"]) for e in data["delivery_events"]] == [
        ("delivered", None),
        ("soft_bounced", ann.deliveries.get().issue.slug),
    ]
    assert data["delivery_events"][1]["description"] == "452 4.2.2 <ann@example.com>: mailbox full"
    assert ann.secret not in json.dumps(data)


def test_export_command_prints_the_subscribers_json(ann, capsys):
    call_command("export_subscriber", "ANN@example.com")
    data = json.loads(capsys.readouterr().out)
    assert data["subscriber"]["email"] == "ann@example.com"


def test_export_command_refuses_an_unknown_address(db):
    with pytest.raises(CommandError, match="No subscriber"):
        call_command("export_subscriber", "nobody@example.com")


# --- Erase ------------------------------------------------------------------------------


def test_erase_deletes_the_subscriber_and_keeps_only_a_keyed_hash(ann):
    privacy.erase_subscriber(subscriber_id=ann.pk, source="test")

    assert not Subscriber.objects.filter(email="ann@example.com").exists()
    kept = SuppressedAddress.objects.get()
    assert kept.reason == SuppressedAddress.Reason.ERASED
    assert kept.address_hash == privacy.address_hash("Ann@Example.com ")
    # Keyed: not the plain hash anyone could compute from a guessed address.
    assert kept.address_hash != hashlib.sha256(b"ann@example.com").hexdigest()


def test_address_hash_depends_on_the_secret_key(settings):
    before = privacy.address_hash("ann@example.com")
    settings.SECRET_KEY = "another-secret-key-for-this-test"
    assert privacy.address_hash("ann@example.com") != before


def test_erase_anonymises_the_consent_log_and_records_an_erased_event(ann):
    privacy.erase_subscriber(subscriber_id=ann.pk, source="preferences page")

    signup = ConsentEvent.objects.get(kind=ConsentEvent.Kind.SIGNUP)
    assert signup.subscriber is None
    assert signup.ip_address is None
    assert signup.user_agent == ""
    assert "ann@example.com" not in json.dumps(signup.detail)
    assert signup.detail["topics"] == ["advances"]
    assert signup.wording == subscriptions.CONSENT_WORDING  # the proof of consent stays
    erased = ConsentEvent.objects.get(kind=ConsentEvent.Kind.ERASED)
    assert erased.subscriber is None
    assert erased.ip_address is None
    assert erased.user_agent == ""
    assert erased.source == "preferences page"
    assert erased.detail["erasure"] == signup.detail["erasure"]
    assert "ann" not in json.dumps(erased.detail).lower()


def test_erase_keeps_delivery_counts_without_the_reader(ann):
    privacy.erase_subscriber(subscriber_id=ann.pk, source="test")

    delivery = Delivery.objects.get()
    assert delivery.subscriber is None
    assert delivery.status == Delivery.Status.SENT


def test_erase_keeps_esp_events_as_counts_without_the_address(ann):
    privacy.erase_subscriber(subscriber_id=ann.pk, source="test")

    events = DeliveryEvent.objects.order_by("event_key")
    assert [(e.kind, e.subscriber_id) for e in events] == [
        ("delivered", None),
        ("soft_bounced", None),
    ]
    assert events[1].delivery == Delivery.objects.get()  # still counted for its issue
    assert events[1].description == "[erased]"
    assert events[0].description == "250 OK"


def test_erase_of_a_bounced_subscriber_keeps_bounced_as_the_reason(subscriber_factory):
    subscriber = subscriber_factory(status=Subscriber.Status.BOUNCED)
    privacy.erase_subscriber(subscriber_id=subscriber.pk, source="test")
    assert SuppressedAddress.objects.get().reason == SuppressedAddress.Reason.BOUNCED


def test_erasing_twice_is_refused_the_second_time(ann):
    privacy.erase_subscriber(subscriber_id=ann.pk, source="test")
    with pytest.raises(privacy.NothingToErase):
        privacy.erase_subscriber(subscriber_id=ann.pk, source="test")
    assert ConsentEvent.objects.filter(kind=ConsentEvent.Kind.ERASED).count() == 1


def test_erased_address_signing_up_on_the_web_gets_double_opt_in_again(
    ann, django_capture_on_commit_callbacks
):
    privacy.erase_subscriber(subscriber_id=ann.pk, source="test")

    with django_capture_on_commit_callbacks(execute=True):
        subscriptions.subscribe(email="ann@example.com", origin=ORIGIN)

    again = Subscriber.objects.get(email="ann@example.com")
    assert again.status == Subscriber.Status.PENDING
    assert again.first_name == ""
    assert mail.outbox[-1].subject == "Please confirm your Advances subscription"


def test_erase_command_erases_the_subscriber(ann, capsys):
    call_command("erase_subscriber", "ann@example.com")
    assert not Subscriber.objects.exists()
    assert SuppressedAddress.objects.filter(
        address_hash=privacy.address_hash("ann@example.com")
    ).exists()
    assert "Erased" in capsys.readouterr().out


# --- Retention --------------------------------------------------------------------------


def age(queryset, **days) -> None:
    queryset.update(**{name: timezone.now() - timedelta(days=n) for name, n in days.items()})


def test_retention_deletes_pending_signups_older_than_the_setting_only(subscriber_factory):
    old = subscriber_factory(email="old@example.com", status=Subscriber.Status.PENDING)
    subscriber_factory(email="new@example.com", status=Subscriber.Status.PENDING)
    subscriber_factory(email="active@example.com", status=Subscriber.Status.ACTIVE)
    ConsentEvent.objects.create(subscriber=old, kind="signup", ip_address="203.0.113.1")
    age(
        Subscriber.objects.filter(email__in=["old@example.com", "active@example.com"]),
        updated_at=31,
    )

    result = privacy.apply_retention()

    assert result.pending_deleted == 1
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "new@example.com",
        "active@example.com",
    }
    # An unconfirmed signup proves nothing: its IP address goes with it.
    assert ConsentEvent.objects.get().ip_address is None


def test_retention_drops_ip_and_user_agent_after_the_setting_and_keeps_the_rest(
    subscriber_factory, settings
):
    settings.NEWSLETTER_CONSENT_DETAIL_DAYS = 100
    subscriber = subscriber_factory()
    old = ConsentEvent.objects.create(
        subscriber=subscriber,
        kind="confirm",
        ip_address="203.0.113.1",
        user_agent="Old",
        wording="W",
    )
    recent = ConsentEvent.objects.create(
        subscriber=subscriber, kind="preferences", ip_address="203.0.113.2", user_agent="New"
    )
    age(ConsentEvent.objects.filter(pk=old.pk), created_at=101)

    assert privacy.apply_retention().consent_details_dropped == 1
    assert privacy.apply_retention().consent_details_dropped == 0  # idempotent

    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.ip_address, old.user_agent, old.wording, old.subscriber) == (
        None,
        "",
        "W",
        subscriber,
    )
    assert (recent.ip_address, recent.user_agent) == ("203.0.113.2", "New")


def test_retention_command_and_task_apply_the_rules(subscriber_factory, capsys):
    from newsletter import tasks

    subscriber_factory(status=Subscriber.Status.PENDING)
    age(Subscriber.objects.all(), updated_at=31)
    call_command("apply_retention")
    assert "Deleted 1 stale pending" in capsys.readouterr().out
    subscriber_factory(status=Subscriber.Status.PENDING)
    age(Subscriber.objects.all(), updated_at=31)
    tasks.apply_retention.delay()
    assert not Subscriber.objects.exists()


def test_retention_runs_daily_in_the_beat_schedule():
    entry = django_settings.CELERY_BEAT_SCHEDULE["newsletter-retention"]
    assert entry["task"] == "newsletter.tasks.apply_retention"
    assert entry["schedule"] == 24 * 60 * 60


def test_retention_defaults_are_30_and_365_days():
    assert django_settings.NEWSLETTER_PENDING_DAYS == 30
    assert django_settings.NEWSLETTER_CONSENT_DETAIL_DAYS == 365


# --- The reader, from the preferences page -------------------------------------------


def test_preferences_page_offers_email_me_my_data_and_erase(client, ann):
    content = client.get(preferences_url(ann)).content.decode()
    assert "Email me my data" in content
    assert "Erase my data" in content


def test_email_me_my_data_sends_the_json_as_an_attachment_to_the_readers_own_address(
    client, ann, django_capture_on_commit_callbacks
):
    token = make_token(ann, Purpose.PREFERENCES)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("newsletter:request_my_data", args=[token]))

    assert response.status_code == 200
    assert b"on its way" in response.content
    assert b"203.0.113.9" not in response.content  # never shown in the browser
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ann@example.com"]
    assert django_settings.NEWSLETTER_POSTAL_ADDRESS in message.body
    assert message.alternatives[0][1] == "text/html"
    parsed = message_from_bytes(message.message().as_bytes())
    attachments = [part for part in parsed.walk() if part.get_filename()]
    assert [part.get_filename() for part in attachments] == ["advances-my-data.json"]
    assert attachments[0].get_content_type() == "application/json"
    data = json.loads(attachments[0].get_payload(decode=True))
    assert data["subscriber"]["email"] == "ann@example.com"
    assert data["consent_log"][0]["ip_address"] == "203.0.113.9"


def test_emailed_data_keeps_names_outside_ascii_intact(
    client, subscriber_factory, django_capture_on_commit_callbacks
):
    zoe = subscriber_factory(first_name="Zoë Ñúñez")
    url = reverse("newsletter:request_my_data", args=[make_token(zoe, Purpose.PREFERENCES)])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url)

    parsed = message_from_bytes(mail.outbox[0].message().as_bytes())
    attachment = next(part for part in parsed.walk() if part.get_filename())
    assert json.loads(attachment.get_payload(decode=True))["subscriber"]["first_name"] == (
        "Zoë Ñúñez"
    )


def test_email_me_my_data_is_limited_to_once_an_hour(
    client, ann, django_capture_on_commit_callbacks
):
    url = reverse("newsletter:request_my_data", args=[make_token(ann, Purpose.PREFERENCES)])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url)
        again = client.post(url)

    assert again.status_code == 429
    assert b"already sent" in again.content
    assert len(mail.outbox) == 1


def test_email_me_my_data_needs_a_post_and_a_genuine_link(client, ann):
    token = make_token(ann, Purpose.PREFERENCES)
    assert client.get(reverse("newsletter:request_my_data", args=[token])).status_code == 405
    unsubscribe_token = make_token(ann, Purpose.UNSUBSCRIBE)
    forged = client.post(reverse("newsletter:request_my_data", args=[unsubscribe_token]))
    assert forged.status_code == 400
    assert not mail.outbox


def test_erase_from_preferences_asks_first_and_a_get_changes_nothing(client, ann):
    url = reverse("newsletter:erase_my_data", args=[make_token(ann, Purpose.PREFERENCES)])
    page = client.get(url)
    assert page.status_code == 200
    assert b"Yes, erase my data" in page.content
    assert Subscriber.objects.filter(pk=ann.pk).exists()


def test_erase_from_preferences_erases_and_says_it_is_done(client, ann):
    token = make_token(ann, Purpose.PREFERENCES)

    done = client.post(reverse("newsletter:erase_my_data", args=[token]), REMOTE_ADDR="203.0.113.4")

    assert done.status_code == 200
    assert b"Your data is erased" in done.content
    assert not Subscriber.objects.filter(pk=ann.pk).exists()
    assert ConsentEvent.objects.filter(kind=ConsentEvent.Kind.ERASED, ip_address=None).exists()
    # Every link sent to the reader is void now.
    assert client.get(reverse("newsletter:preferences", args=[token])).status_code == 400
    again = client.post(reverse("newsletter:erase_my_data", args=[token]))
    assert again.status_code == 400


def test_unsubscribed_reader_can_still_export_and_erase(client, subscriber_factory):
    subscriber = subscriber_factory(status=Subscriber.Status.UNSUBSCRIBED)
    content = client.get(preferences_url(subscriber)).content.decode()
    assert "Email me my data" in content
    assert "Erase my data" in content


# --- Admin ------------------------------------------------------------------------------


@pytest.fixture
def publisher(client):
    client.force_login(UserFactory(groups=["Publishers"], username="pat"))
    return client


def test_publisher_downloads_a_subscribers_data_as_json(publisher, ann):
    page = publisher.get(reverse("admin:newsletter_subscriber_change", args=[ann.pk]))
    assert "Export data (JSON)" in page.content.decode()

    response = publisher.get(reverse("admin:newsletter_subscriber_export_data", args=[ann.pk]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith("attachment;")
    assert json.loads(response.content)["subscriber"]["email"] == "ann@example.com"


def test_publisher_erases_a_subscriber_after_a_confirmation_page(publisher, ann):
    url = reverse("admin:newsletter_subscriber_erase", args=[ann.pk])
    confirm = publisher.get(url)
    assert "This cannot be undone" in confirm.content.decode()
    assert Subscriber.objects.filter(pk=ann.pk).exists()

    response = publisher.post(url)

    assert response.status_code == 302
    assert not Subscriber.objects.filter(pk=ann.pk).exists()
    assert ConsentEvent.objects.get(kind="erased").source == "admin by pat"


def test_publisher_erases_selected_subscribers_with_the_action_after_confirming(
    publisher, subscriber_factory
):
    chosen = subscriber_factory.create_batch(2)
    kept = subscriber_factory()
    url = reverse("admin:newsletter_subscriber_changelist")
    data = {"action": "erase_selected", "_selected_action": [s.pk for s in chosen]}

    confirm = publisher.post(url, data)
    assert confirm.status_code == 200
    assert "Erase the personal data of 2 subscribers" in confirm.content.decode()
    assert Subscriber.objects.count() == 3

    publisher.post(url, {**data, "confirmed": "yes"})

    assert list(Subscriber.objects.all()) == [kept]
    assert SuppressedAddress.objects.count() == 2


@pytest.mark.parametrize("name", ["export_data", "erase", "import", "export_csv", "changelist"])
def test_editors_cannot_see_export_erase_or_import_subscribers(client, ann, name):
    client.force_login(UserFactory(groups=["Editors"]))
    args = [ann.pk] if name in ("export_data", "erase") else []
    for method in (client.get, client.post):
        response = method(reverse(f"admin:newsletter_subscriber_{name}", args=args))
        assert response.status_code == 403
    assert Subscriber.objects.filter(pk=ann.pk).exists()
    assert not SuppressedAddress.objects.exists()
