"""The reader's side: subscribe, confirm, unsubscribe, preferences.

Every change of a subscriber's consent writes a ConsentEvent, and every email is
queued to the transactional queue only after the change has committed.
"""

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from newsletter.errors import NewsletterError
from newsletter.models import ConsentEvent, Subscriber, Topic

# Shown beside the signup button and stored, word for word (in the language the reader
# saw it in), with every signup.
CONSENT_WORDING = _(
    "Yes, email me Advances, the cancer center's free patient-education newsletter, "
    "about the topics I ticked. I can unsubscribe at any time with the link in every email."
)
# Shown on the confirmation page beside its button, and stored with the confirmation.
CONFIRM_WORDING = _("Confirm that you want to receive Advances at this address.")

Status = Subscriber.Status


class SubscriberEmail(enum.StrEnum):
    """The transactional emails a subscriber can get about their subscription."""

    CONFIRM = "confirm"
    WELCOME = "welcome"
    ALREADY_SUBSCRIBED = "already_subscribed"
    # After an unsubscribe: the proof that it worked, and the way back.
    GOODBYE = "goodbye"


class NotPending(NewsletterError):
    """Only a pending subscription can be confirmed."""


@dataclass(frozen=True)
class Origin:
    """Where a consent decision came from, kept in the consent log."""

    ip_address: str | None = None
    user_agent: str = ""
    source: str = ""


# Subscriber.source for signups on Advances' own pages.
WEBSITE_SOURCE = "website"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def default_topics() -> list[Topic]:
    return list(Topic.objects.filter(is_default=True))


def subscribe(
    *,
    email: str,
    first_name: str = "",
    topics: Iterable[Topic] = (),
    language: str = "en",
    source: str = "",
    origin: Origin,
) -> None:
    """Start double opt-in for an address, whatever state it is in.

    New, unsubscribed, bounced or complained addresses become pending and get a
    confirmation email; a pending one gets it again; an active one gets a note that it
    is already subscribed, with its preferences link. Repeats are throttled to one
    email per NEWSLETTER_RESEND_MINUTES. The caller learns nothing of which case it
    was, so nothing public can reveal whether an address is on the list. A signup
    that becomes pending records its language (every later email's) and source (the
    form, embed, API key or import it came through); an active reader's stay as they
    are.
    """
    chosen = list(topics) or default_topics()
    with transaction.atomic():
        subscriber, created = Subscriber.objects.select_for_update().get_or_create(
            email=normalize_email(email), defaults={"first_name": first_name.strip()}
        )
        if subscriber.status == Status.ACTIVE:
            if _may_notify_again(subscriber):
                _notify(subscriber, SubscriberEmail.ALREADY_SUBSCRIBED)
                subscriber.save(update_fields=["last_notified_at", "updated_at"])
            return
        was_pending = subscriber.status == Status.PENDING and not created
        subscriber.status = Status.PENDING
        subscriber.language = language
        subscriber.source = source[:100]
        if first_name.strip():
            subscriber.first_name = first_name.strip()
        subscriber.topics.set(chosen)
        _log(
            subscriber,
            ConsentEvent.Kind.SIGNUP,
            origin,
            wording=str(CONSENT_WORDING),
            detail={"topics": [topic.slug for topic in chosen]},
        )
        if not was_pending or _may_notify_again(subscriber):
            _notify(subscriber, SubscriberEmail.CONFIRM)
        subscriber.save()


def confirm_subscription(*, subscriber: Subscriber, origin: Origin) -> bool:
    """Make a pending subscription active and welcome the reader.

    Idempotent: confirming an active subscription changes nothing and returns False.
    Raises NotPending for an unsubscribed or suppressed address, which must sign up
    again.
    """
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if subscriber.status == Status.ACTIVE:
            return False
        if subscriber.status != Status.PENDING:
            raise NotPending(subscriber.status)
        subscriber.status = Status.ACTIVE
        subscriber.confirmed_at = timezone.now()
        _log(subscriber, ConsentEvent.Kind.CONFIRM, origin, wording=str(CONFIRM_WORDING))
        _notify(subscriber, SubscriberEmail.WELCOME)
        subscriber.save()
    return True


def resend_confirmation(*, subscriber: Subscriber) -> None:
    """Send a pending subscriber a fresh confirmation link (throttled); anyone else
    nothing."""
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if subscriber.status == Status.PENDING and _may_notify_again(subscriber):
            _notify(subscriber, SubscriberEmail.CONFIRM)
            subscriber.save(update_fields=["last_notified_at", "updated_at"])


def unsubscribe(*, subscriber: Subscriber, origin: Origin) -> bool:
    """Stop all email to this subscriber at once, including any issue being sent now.

    Idempotent: returns False when there was nothing to stop. A bounced or complained
    address stays suppressed (a stronger state than unsubscribed).
    """
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if subscriber.status not in (Status.PENDING, Status.ACTIVE):
            return False
        was_active = subscriber.status == Status.ACTIVE
        subscriber.status = Status.UNSUBSCRIBED
        subscriber.unsubscribed_at = timezone.now()
        _log(subscriber, ConsentEvent.Kind.UNSUBSCRIBE, origin)
        # A reader who was receiving Advances gets one last email saying it worked; an
        # address that never confirmed gets nothing (it may not be theirs).
        if was_active:
            _notify(subscriber, SubscriberEmail.GOODBYE)
        subscriber.save()
    return True


def suppress(*, subscriber_id: int, status: str, reason: str, source: str = "esp") -> bool:
    """Stop all email to an address the ESP reports as bad (bounced) or that complained.

    Writes a ConsentEvent; a later signup must go through double opt-in again. Returns
    False when the subscriber is gone or already suppressed this way. A complaint is
    the strongest state: a later bounce leaves a complained subscriber complained.
    """
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().filter(pk=subscriber_id).first()
        if subscriber is None or subscriber.status in (status, Status.COMPLAINED):
            return False
        subscriber.status = status
        _log(
            subscriber,
            ConsentEvent.Kind.SUPPRESSED,
            Origin(source=source),
            detail={"status": status, "reason": reason},
        )
        subscriber.save(update_fields=["status", "updated_at"])
    return True


def update_preferences(
    *,
    subscriber: Subscriber,
    first_name: str,
    topics: Iterable[Topic],
    origin: Origin,
    language: str | None = None,
) -> None:
    """Change the name, topics and (when given) language of a pending or active
    subscriber and log it. The language is that of every later page and email."""
    chosen = list(topics)
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if subscriber.status not in (Status.PENDING, Status.ACTIVE):
            raise NotPending(subscriber.status)
        subscriber.first_name = first_name.strip()
        detail: dict[str, object] = {"topics": [topic.slug for topic in chosen]}
        if language and language != subscriber.language:
            subscriber.language = detail["language"] = language
        subscriber.topics.set(chosen)
        _log(subscriber, ConsentEvent.Kind.PREFERENCES, origin, detail=detail)
        subscriber.save()


def _may_notify_again(subscriber: Subscriber) -> bool:
    if subscriber.last_notified_at is None:
        return True
    wait = timedelta(minutes=settings.NEWSLETTER_RESEND_MINUTES)
    return timezone.now() - subscriber.last_notified_at >= wait


def _notify(subscriber: Subscriber, email: SubscriberEmail) -> None:
    # Tasks call services and services queue tasks; importing here keeps the module
    # graph one-way at import time.
    from newsletter import tasks

    subscriber.last_notified_at = timezone.now()
    transaction.on_commit(partial(tasks.send_subscriber_email.delay, subscriber.pk, email.value))


def _log(
    subscriber: Subscriber,
    kind: str,
    origin: Origin,
    *,
    wording: str = "",
    detail: dict | None = None,
) -> None:
    ConsentEvent.objects.create(
        subscriber=subscriber,
        kind=kind,
        ip_address=origin.ip_address,
        user_agent=_storable(origin.user_agent)[:500],
        source=_storable(origin.source)[:200],
        wording=wording,
        detail=detail or {},
    )


def _storable(text: str) -> str:
    """Text from the client as the consent log can keep it: PostgreSQL's text types
    refuse NUL, so each NUL is kept as U+FFFD (the mark of a character that could not be
    represented) instead of failing the request."""
    return text.replace("\x00", "\ufffd")
