from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError
from django.utils import timezone

from newsletter import subscriptions
from newsletter.models import ConsentEvent, Subscriber
from newsletter.subscriptions import Origin
from tests.conftest import links_in

pytestmark = pytest.mark.django_db

ORIGIN = Origin(ip_address="203.0.113.5", user_agent="pytest", source="/")


def subscribe(email: str, capture, **kwargs) -> None:
    with capture(execute=True):
        subscriptions.subscribe(email=email, origin=ORIGIN, **kwargs)


def test_new_address_becomes_pending_with_a_confirmation_email(
    main_topic, django_capture_on_commit_callbacks
):
    subscribe("  New.Reader@Example.COM ", django_capture_on_commit_callbacks, first_name="Ann")

    subscriber = Subscriber.objects.get()
    assert subscriber.email == "new.reader@example.com"
    assert subscriber.status == Subscriber.Status.PENDING
    assert list(subscriber.topics.all()) == [main_topic]
    event = subscriber.consent_events.get()
    assert event.kind == ConsentEvent.Kind.SIGNUP
    assert event.wording == subscriptions.CONSENT_WORDING
    assert (event.ip_address, event.user_agent, event.source) == ("203.0.113.5", "pytest", "/")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.reader@example.com"]
    assert links_in(mail.outbox[0], "/newsletter/confirm/")


def test_confirmation_email_has_text_html_postal_address_expiry_and_unsubscribe(
    db, django_capture_on_commit_callbacks, settings
):
    subscribe("ann@example.com", django_capture_on_commit_callbacks)

    message = mail.outbox[0]
    html = message.alternatives[0][0]
    for part in (message.body, html):
        assert settings.NEWSLETTER_POSTAL_ADDRESS in part
        assert "7 days" in part
        assert "/newsletter/unsubscribe/" in part
        assert "/newsletter/confirm/" in part
    assert message.alternatives[0][1] == "text/html"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.extra_headers["List-Unsubscribe"].startswith("<https://advances.test/")


def test_pending_address_signing_up_again_gets_the_confirmation_again_but_throttled(
    db, django_capture_on_commit_callbacks
):
    subscribe("ann@example.com", django_capture_on_commit_callbacks)
    subscribe("ann@example.com", django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1  # throttled

    Subscriber.objects.update(last_notified_at=timezone.now() - timedelta(minutes=11))
    subscribe("ann@example.com", django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2
    assert "confirm" in mail.outbox[1].subject.lower()


def test_active_address_signing_up_gets_already_subscribed_email_and_stays_active(
    subscriber_factory, django_capture_on_commit_callbacks
):
    subscriber = subscriber_factory(email="ann@example.com", first_name="Ann")

    subscribe("ANN@example.com", django_capture_on_commit_callbacks, first_name="Mallory")

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.first_name == "Ann"
    assert len(mail.outbox) == 1
    assert "already subscribed" in mail.outbox[0].subject
    assert links_in(mail.outbox[0], "/newsletter/preferences/")
    assert not links_in(mail.outbox[0], "/newsletter/confirm/")


@pytest.mark.parametrize(
    "status",
    [Subscriber.Status.UNSUBSCRIBED, Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED],
)
def test_stopped_address_signing_up_goes_through_double_opt_in_again(
    status, subscriber_factory, django_capture_on_commit_callbacks
):
    subscriber = subscriber_factory(email="ann@example.com", status=status)

    subscribe("ann@example.com", django_capture_on_commit_callbacks)

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING
    assert links_in(mail.outbox[0], "/newsletter/confirm/")


def test_confirm_makes_pending_active_logs_consent_and_welcomes(
    subscriber_factory, django_capture_on_commit_callbacks
):
    subscriber = subscriber_factory(status=Subscriber.Status.PENDING)

    with django_capture_on_commit_callbacks(execute=True):
        assert subscriptions.confirm_subscription(subscriber=subscriber, origin=ORIGIN)

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.confirmed_at is not None
    event = subscriber.consent_events.get(kind=ConsentEvent.Kind.CONFIRM)
    assert event.ip_address == "203.0.113.5"
    assert event.wording == subscriptions.CONFIRM_WORDING
    assert mail.outbox[0].subject == "Welcome to Advances"


def test_confirm_is_idempotent(subscriber_factory, django_capture_on_commit_callbacks):
    subscriber = subscriber_factory(status=Subscriber.Status.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        subscriptions.confirm_subscription(subscriber=subscriber, origin=ORIGIN)
        assert not subscriptions.confirm_subscription(subscriber=subscriber, origin=ORIGIN)
    assert len(mail.outbox) == 1
    assert subscriber.consent_events.filter(kind=ConsentEvent.Kind.CONFIRM).count() == 1


def test_unsubscribed_address_cannot_be_confirmed_by_an_old_link(subscriber_factory):
    subscriber = subscriber_factory(status=Subscriber.Status.UNSUBSCRIBED)
    with pytest.raises(subscriptions.NotPending):
        subscriptions.confirm_subscription(subscriber=subscriber, origin=ORIGIN)


def test_unsubscribe_is_immediate_idempotent_and_logged(subscriber_factory):
    subscriber = subscriber_factory()

    assert subscriptions.unsubscribe(subscriber=subscriber, origin=ORIGIN)
    assert not subscriptions.unsubscribe(subscriber=subscriber, origin=ORIGIN)

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert subscriber.unsubscribed_at is not None
    assert subscriber.consent_events.filter(kind=ConsentEvent.Kind.UNSUBSCRIBE).count() == 1


def test_unsubscribe_leaves_a_bounced_address_suppressed(subscriber_factory):
    subscriber = subscriber_factory(status=Subscriber.Status.BOUNCED)
    assert not subscriptions.unsubscribe(subscriber=subscriber, origin=ORIGIN)
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.BOUNCED


def test_update_preferences_changes_name_and_topics_and_logs(subscriber_factory, topic):
    subscriber = subscriber_factory()

    subscriptions.update_preferences(
        subscriber=subscriber, first_name=" Bea ", topics=[topic], origin=ORIGIN
    )

    subscriber.refresh_from_db()
    assert subscriber.first_name == "Bea"
    assert list(subscriber.topics.all()) == [topic]
    event = subscriber.consent_events.get(kind=ConsentEvent.Kind.PREFERENCES)
    assert event.detail == {"topics": ["breast-cancer"]}


def test_database_refuses_an_address_that_is_not_lower_case(db):
    with pytest.raises(IntegrityError):
        Subscriber.objects.create(email="Upper@Example.com")


def test_database_refuses_a_second_subscriber_with_the_same_address(subscriber_factory):
    subscriber_factory(email="ann@example.com")
    with pytest.raises(IntegrityError):
        Subscriber.objects.create(email="ann@example.com")
