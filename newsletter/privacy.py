"""Data rights and retention: export one subscriber's data, erase it, and forget what
the list no longer needs.

An erased address leaves behind only a keyed hash (SuppressedAddress), so that an
import can recognise it and never put it back on the list without the reader's fresh
double opt-in, while the table itself names nobody.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from newsletter import progress
from newsletter.errors import NewsletterError
from newsletter.models import (
    ConsentEvent,
    Delivery,
    DeliveryEvent,
    Subscriber,
    SuppressedAddress,
)
from newsletter.subscriptions import normalize_email

# Changing this salt (or SECRET_KEY) makes every kept hash unrecognisable, i.e. erased
# addresses could be imported again. Keep both stable.
ADDRESS_HASH_SALT = "advances.newsletter.suppressed-address"
EXPORT_FORMAT_VERSION = 1


class NothingToErase(NewsletterError):
    """The subscriber is already gone."""


def address_hash(email: str) -> str:
    """A keyed hash (HMAC-SHA256, key derived from SECRET_KEY) of a normalised address:
    the same address always gives the same hash, and without the key nobody can test
    a guessed address against the table."""
    return salted_hmac(ADDRESS_HASH_SALT, normalize_email(email), algorithm="sha256").hexdigest()


def suppressed_hashes(emails: list[str]) -> dict[str, str]:
    """{address: reason} for those of these addresses that are suppressed by hash.
    One query per thousand addresses."""
    by_hash = {address_hash(email): email for email in emails}
    found: dict[str, str] = {}
    hashes = list(by_hash)
    for start in range(0, len(hashes), 1000):
        for digest, reason in SuppressedAddress.objects.filter(
            address_hash__in=hashes[start : start + 1000]
        ).values_list("address_hash", "reason"):
            found[by_hash[digest]] = reason
    return found


# --- Export -----------------------------------------------------------------------------


def subscriber_export(*, subscriber: Subscriber) -> dict[str, Any]:
    """Everything Advances holds about one subscriber, as plain JSON-ready data:
    the subscriber, their topics, their consent log, the issues sent to them and what
    the ESP reported about those messages. Never includes secrets (the link secret)."""
    deliveries = list(
        Delivery.objects.filter(subscriber=subscriber).select_related("issue").order_by("pk")
    )
    return {
        "format": "advances-subscriber-export",
        "version": EXPORT_FORMAT_VERSION,
        "exported_at": timezone.now(),
        "subscriber": {
            "email": subscriber.email,
            "first_name": subscriber.first_name,
            "status": subscriber.status,
            "created_at": subscriber.created_at,
            "confirmed_at": subscriber.confirmed_at,
            "unsubscribed_at": subscriber.unsubscribed_at,
            "last_notified_at": subscriber.last_notified_at,
        },
        "topics": [{"slug": topic.slug, "name": topic.name} for topic in subscriber.topics.all()],
        "consent_log": [
            {
                "kind": event.kind,
                "at": event.created_at,
                "ip_address": event.ip_address,
                "user_agent": event.user_agent,
                "source": event.source,
                "wording": event.wording,
                "detail": event.detail,
            }
            for event in subscriber.consent_events.order_by("created_at", "pk")
        ],
        "deliveries": [
            {
                "issue": delivery.issue.subject,
                "issue_slug": delivery.issue.slug,
                "status": delivery.status,
                "sent_at": delivery.sent_at,
                "attempts": delivery.attempts,
            }
            for delivery in deliveries
        ],
        "delivery_events": _delivery_events_for_export(subscriber, deliveries),
    }


def _delivery_events(
    subscriber: Subscriber, deliveries: list[Delivery]
) -> "QuerySet[DeliveryEvent]":
    """What the ESP reported about this subscriber's messages: events of their
    deliveries, and events about their address outside an issue (a confirmation)."""
    return DeliveryEvent.objects.filter(
        Q(subscriber=subscriber) | Q(delivery__in=deliveries)
    ).order_by("occurred_at", "pk")


def _delivery_events_for_export(
    subscriber: Subscriber, deliveries: list[Delivery]
) -> list[dict[str, Any]]:
    issues = {delivery.pk: delivery.issue.slug for delivery in deliveries}
    return [
        {
            "issue_slug": issues.get(event.delivery_id) if event.delivery_id else None,
            "esp": event.esp,
            "kind": event.kind,
            "esp_event_type": event.esp_event_type,
            "occurred_at": event.occurred_at,
            "received_at": event.received_at,
            "message_id": event.message_id,
            "description": event.description,
        }
        for event in _delivery_events(subscriber, deliveries)
    ]


def subscriber_export_json(*, subscriber: Subscriber) -> str:
    """subscriber_export() as indented UTF-8 JSON text."""
    return json.dumps(
        subscriber_export(subscriber=subscriber),
        cls=DjangoJSONEncoder,
        ensure_ascii=False,
        indent=2,
    )


def request_data_export(*, subscriber: Subscriber) -> bool:
    """Email a subscriber their data, as a JSON attachment, to their own address.

    Throttled to one request per NEWSLETTER_EXPORT_MINUTES per subscriber: returns
    False (and queues nothing) when asked again too soon. The data is never shown in
    the browser, because a preferences link can be forwarded.
    """
    from newsletter import tasks

    wait = settings.NEWSLETTER_EXPORT_MINUTES * 60
    # cache.add is atomic (also on Redis): of two requests at once, one wins.
    if not cache.add(f"newsletter:export:{subscriber.pk}", 1, timeout=wait):
        return False
    transaction.on_commit(partial(tasks.send_data_export.delay, subscriber.pk))
    return True


# --- Erase ------------------------------------------------------------------------------


def erase_subscriber(*, subscriber_id: int, source: str) -> None:
    """Erase a subscriber's personal data, for good.

    Guarantees, in one transaction: a keyed hash of the address is kept (reason
    bounced or complained if it was suppressed, else erased), so no import can put
    the address back without fresh opt-in; every consent event loses its IP address,
    user agent, the address in its detail and its link to the subscriber, and is
    tagged with a random erasure id so that the log still shows that consent existed
    and was erased; deliveries keep their counts but lose the link and any error text
    naming the address, and ESP events about them lose any description naming it; the
    subscriber row (name, topics, secret: every link sent) is deleted; one `erased`
    event without personal data records the erasure.

    Raises NothingToErase when the subscriber is already gone.
    """
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().filter(pk=subscriber_id).first()
        if subscriber is None:
            raise NothingToErase(subscriber_id)
        email = subscriber.email
        erasure = uuid.uuid4().hex
        reason = {
            Subscriber.Status.BOUNCED: SuppressedAddress.Reason.BOUNCED,
            Subscriber.Status.COMPLAINED: SuppressedAddress.Reason.COMPLAINED,
        }.get(Subscriber.Status(subscriber.status), SuppressedAddress.Reason.ERASED)
        SuppressedAddress.objects.update_or_create(
            address_hash=address_hash(email), defaults={"reason": reason}
        )
        events = list(subscriber.consent_events.all())
        for event in events:
            event.ip_address = None
            event.user_agent = ""
            event.source = _without(event.source, email)
            detail = _scrub(event.detail, email)
            event.detail = (
                {**detail, "erasure": erasure}
                if isinstance(detail, dict)
                else {"detail": detail, "erasure": erasure}
            )
        ConsentEvent.objects.bulk_update(events, ["ip_address", "user_agent", "source", "detail"])
        deliveries = list(Delivery.objects.filter(subscriber=subscriber))
        reported = list(
            _delivery_events(subscriber, deliveries).filter(description__icontains=email)
        )
        for delivery_event in reported:
            delivery_event.description = "[erased]"
        DeliveryEvent.objects.bulk_update(reported, ["description"])
        Delivery.objects.filter(subscriber=subscriber, error__icontains=email).update(error="")
        subscriber.delete()
        ConsentEvent.objects.create(
            kind=ConsentEvent.Kind.ERASED,
            source=_without(source, email)[:200],
            detail={"erasure": erasure, "reason": reason},
        )


def _without(text: str, email: str) -> str:
    if email and email in text.lower():
        return "[erased]"
    return text


def _scrub(value: Any, email: str) -> Any:
    """value with every string that contains the address replaced."""
    if isinstance(value, dict):
        return {key: _scrub(item, email) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, email) for item in value]
    if isinstance(value, str):
        return _without(value, email)
    return value


# --- Retention --------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionResult:
    pending_deleted: int
    consent_details_dropped: int
    deliveries_removed: int = 0


def apply_retention() -> RetentionResult:
    """Forget what the list no longer needs. Idempotent; safe to run at any time.

    - Pending subscriptions not confirmed within NEWSLETTER_PENDING_DAYS (counted from
      their last change) are deleted, and their consent events lose IP address and
      user agent: an unconfirmed signup proves no consent, and may not even have been
      made by the owner of the address.
    - IP addresses and user agents in the consent log older than
      NEWSLETTER_CONSENT_DETAIL_DAYS are dropped; the rest of the log is kept as
      proof of consent.
    - Delivery rows (who was sent which issue) of issues sent more than
      NEWSLETTER_DELIVERY_DAYS ago are removed; each issue keeps its counts
      (newsletter.progress.retire_old_deliveries).
    """
    now = timezone.now()
    pending_cutoff = now - timedelta(days=settings.NEWSLETTER_PENDING_DAYS)
    detail_cutoff = now - timedelta(days=settings.NEWSLETTER_CONSENT_DETAIL_DAYS)
    with transaction.atomic():
        stale = Subscriber.objects.filter(
            status=Subscriber.Status.PENDING, updated_at__lt=pending_cutoff
        )
        ConsentEvent.objects.filter(subscriber__in=stale).update(ip_address=None, user_agent="")
        pending_deleted = stale.delete()[1].get(Subscriber._meta.label, 0)
        dropped = (
            ConsentEvent.objects.filter(created_at__lt=detail_cutoff)
            .filter(Q(ip_address__isnull=False) | ~Q(user_agent=""))
            .update(ip_address=None, user_agent="")
        )
    removed = progress.retire_old_deliveries(now=now)
    return RetentionResult(
        pending_deleted=pending_deleted, consent_details_dropped=dropped, deliveries_removed=removed
    )
