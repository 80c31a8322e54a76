"""What the ESP tells us after sending: events, their consequences, and the figures.

Anymail's webhook views check each request (our basic-auth secret, and the ESP's
signature where it has one), turn the ESP's payload into AnymailTrackingEvents and send
the `tracking` signal. `record_event` receives it and only records: one DeliveryEvent
per ESP event (webhooks are retried and replayed, so a second copy is ignored), mapped
to its Delivery through the metadata sending attached, else the message id. What an
event means for the reader (suppression) is applied by a task, after commit, by
`apply_event`: the webhook answers fast and a replay changes nothing.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason, tracking
from django.conf import settings
from django.db import transaction
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncMonth
from django.dispatch import receiver
from django.utils import timezone

from newsletter import progress, subscriptions
from newsletter.models import ConsentEvent, Delivery, DeliveryEvent, Issue, ListSnapshot, Subscriber

logger = logging.getLogger(__name__)

Kind = DeliveryEvent.Kind

# Kinds that change what the reader gets; the others are only counted.
CONSEQUENTIAL = {Kind.BOUNCED, Kind.SOFT_BOUNCED, Kind.COMPLAINED, Kind.UNSUBSCRIBED}
# Kinds that suppress at once: the status they give, and what the consent log says.
SUPPRESSING: dict[str, tuple[str, str]] = {
    Kind.BOUNCED: (Subscriber.Status.BOUNCED, "hard bounce"),
    Kind.COMPLAINED: (Subscriber.Status.COMPLAINED, "spam complaint"),
}
# Postmark reports these as "bounced", but they are temporary: the mailbox may work
# again, so they count toward the soft-bounce limit instead of suppressing at once.
POSTMARK_SOFT_TYPES = {"SoftBounce", "Transient", "DnsError"}
# Mailbox providers (Gmail, Yahoo) block senders whose complaint rate passes this.
COMPLAINT_LINE = 0.003


def event_kind(*, esp: str, event: AnymailTrackingEvent) -> str:
    """The one thing this event says about a reader, in our words."""
    event_type = event.event_type
    if event_type == EventType.BOUNCED:
        esp_event = event.esp_event
        if (
            esp.lower() == "postmark"
            and isinstance(esp_event, dict)
            and esp_event.get("Type") in POSTMARK_SOFT_TYPES
        ):
            return Kind.SOFT_BOUNCED
        return Kind.BOUNCED
    if event_type == EventType.REJECTED:
        # The ESP refused to send because it knows the address is bad or blocked it
        # (its own suppression list); anything else is not the reader's doing.
        if event.reject_reason in (RejectReason.BOUNCED, RejectReason.INVALID):
            return Kind.BOUNCED
        if event.reject_reason == RejectReason.SPAM:
            return Kind.COMPLAINED
        return Kind.OTHER
    return {
        EventType.DELIVERED: Kind.DELIVERED,
        EventType.DEFERRED: Kind.SOFT_BOUNCED,
        EventType.COMPLAINED: Kind.COMPLAINED,
        EventType.UNSUBSCRIBED: Kind.UNSUBSCRIBED,
        EventType.OPENED: Kind.OPENED,
        EventType.CLICKED: Kind.CLICKED,
    }.get(event_type, Kind.OTHER)


@receiver(tracking, dispatch_uid="newsletter.tracking.record_event")
def on_tracking_event(sender: object, event: AnymailTrackingEvent, esp_name: str, **_: Any) -> None:
    """Anymail's tracking signal, sent once per event by its webhook views."""
    record_event(esp=esp_name, event=event)


def record_event(*, esp: str, event: AnymailTrackingEvent) -> DeliveryEvent | None:
    """Record one ESP event, once.

    Guarantees: a second copy of the same event (same ESP event id, or the same
    fields where the ESP gives no id) records nothing and queues nothing, so replays
    are harmless; no address is stored (the event points at its Delivery and
    Subscriber); an event that changes what the reader gets is applied by
    `apply_event` on the transactional queue after commit. Returns the new event, or
    None for a copy already recorded.
    """
    kind = event_kind(esp=esp, event=event)
    delivery_id, subscriber_id = _find_delivery(event)
    recorded, created = DeliveryEvent.objects.get_or_create(
        esp=esp[:30],
        event_key=_event_key(esp, event),
        defaults={
            "kind": kind,
            "esp_event_type": _clean(str(event.event_type or ""))[:30],
            "delivery_id": delivery_id,
            "subscriber_id": subscriber_id,
            "message_id": _clean(event.message_id)[:200],
            "description": _clean(event.mta_response or event.description)[:1000],
            "occurred_at": _when(event.timestamp),
        },
    )
    if not created:
        return None
    if kind in CONSEQUENTIAL and subscriber_id is not None:
        from newsletter import tasks

        transaction.on_commit(partial(tasks.apply_delivery_event.delay, recorded.pk))
    return recorded


def apply_event(*, event_id: int) -> bool:
    """Do what a recorded event means for its subscriber, once.

    A hard bounce makes the subscriber `bounced`, a complaint `complained`, an
    unsubscribe reported by the ESP `unsubscribed`; a soft bounce suppresses (as
    bounced) once the subscriber has had NEWSLETTER_SOFT_BOUNCE_LIMIT messages soft-
    bounce within NEWSLETTER_SOFT_BOUNCE_DAYS. Each change writes a ConsentEvent (in
    subscriptions), and a suppressed reader is never sent to again: claims skip
    anyone not active, and a later signup needs double opt-in. Returns whether the
    subscriber's status changed.
    """
    with transaction.atomic():
        event = (
            DeliveryEvent.objects.select_for_update()
            .filter(pk=event_id, applied_at__isnull=True)
            .first()
        )
        if event is None:
            return False
        changed = _apply(event)
        event.applied_at = timezone.now()
        event.save(update_fields=["applied_at"])
    return changed


def _apply(event: DeliveryEvent) -> bool:
    subscriber_id = event.subscriber_id
    if subscriber_id is None:
        return False
    source = f"{event.esp} webhook"
    if event.kind in SUPPRESSING:
        status, what = SUPPRESSING[event.kind]
        return subscriptions.suppress(
            subscriber_id=subscriber_id,
            status=status,
            reason=f"{what} reported by {event.esp}",
            source=source,
        )
    if event.kind == Kind.UNSUBSCRIBED:
        subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
        return subscriber is not None and subscriptions.unsubscribe(
            subscriber=subscriber, origin=subscriptions.Origin(source=source)
        )
    if event.kind == Kind.SOFT_BOUNCED:
        days = settings.NEWSLETTER_SOFT_BOUNCE_DAYS
        limit = settings.NEWSLETTER_SOFT_BOUNCE_LIMIT
        # Distinct messages, not events: an ESP reports every retry of one message.
        messages = (
            DeliveryEvent.objects.filter(
                subscriber_id=subscriber_id,
                kind=Kind.SOFT_BOUNCED,
                occurred_at__gte=event.occurred_at - timedelta(days=days),
            )
            .values("message_id")
            .distinct()
            .count()
        )
        if messages >= limit:
            return subscriptions.suppress(
                subscriber_id=subscriber_id,
                status=Subscriber.Status.BOUNCED,
                reason=f"{messages} messages soft-bounced within {days} days",
                source=source,
            )
    return False


def _find_delivery(event: AnymailTrackingEvent) -> tuple[int | None, int | None]:
    """(delivery id, subscriber id) this event is about: by the delivery id sending
    put in the metadata, else by the recipient and message id; an event about an
    email that was not an issue (a confirmation, say) still finds its subscriber."""
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    number = str(metadata.get("delivery", ""))
    if number.isascii() and number.isdecimal() and len(number) <= 18:
        found = Delivery.objects.filter(pk=int(number)).values_list("pk", "subscriber_id").first()
        if found is not None:
            return found
    recipient = _clean(event.recipient).strip().lower()
    if not recipient or len(recipient) > 254:
        return None, None
    subscriber_id = Subscriber.objects.filter(email=recipient).values_list("pk", flat=True).first()
    if subscriber_id is None:
        return None, None
    message_id = _clean(event.message_id)
    delivery_id = (
        Delivery.objects.filter(subscriber_id=subscriber_id, esp_message_id=message_id)
        .values_list("pk", flat=True)
        .first()
        if message_id
        else None
    )
    return delivery_id, subscriber_id


def _event_key(esp: str, event: AnymailTrackingEvent) -> str:
    """The ESP's event id, or a digest of what identifies the event where the ESP
    gives none (Postmark's delivery and complaint events) or gives one we cannot
    store as it is."""
    event_id = _clean(event.event_id)
    if event_id and len(event_id) <= 150 and event_id.isprintable():
        return f"id:{event_id}"
    parts = [
        esp,
        str(event.event_type),
        event_id,
        _clean(event.message_id),
        _clean(event.recipient).lower(),
        event.timestamp.isoformat() if isinstance(event.timestamp, datetime) else "",
        _clean(event.mta_response or event.description),
    ]
    return "sha256:" + hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()


def _when(timestamp: object) -> datetime:
    """When the event happened: the ESP's time (one without a zone is UTC, as ESPs
    send), or now if it gave none or one no database column can hold."""
    if not isinstance(timestamp, datetime):
        return timezone.now()
    if timezone.is_naive(timestamp):
        timestamp = timestamp.replace(tzinfo=UTC)
    try:
        return timestamp.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 9999-12-31T23:00-05:00 is past year 9999
        return timezone.now()


def _clean(value: Any) -> str:
    """ESP text as the database can keep it: PostgreSQL refuses NUL characters."""
    if value is None:
        return ""
    return str(value).replace("\x00", "\ufffd")


# --- What publishers see -----------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeRow:
    kind: str
    label: str
    readers: int
    share: float  # of the messages sent

    @property
    def percent(self) -> float:
        return self.share * 100


@dataclass(frozen=True)
class IssueOutcome:
    """What became of an issue's messages: readers per kind of event."""

    sent: int
    counts: dict[str, int]

    def rate(self, kind: str) -> float:
        return self.counts.get(kind, 0) / self.sent if self.sent else 0.0

    def rows(self) -> list["OutcomeRow"]:
        """One row per kind shown, in order, for the table and the chart."""
        labels = dict(Kind.choices)
        return [OutcomeRow(k, str(labels[k]), n, self.rate(k)) for k, n in self.counts.items()]

    @property
    def complaints_over_line(self) -> bool:
        return self.rate(Kind.COMPLAINED) > COMPLAINT_LINE


def shown_kinds() -> list[str]:
    """The kinds of event shown per issue: opens and clicks only when tracking is on
    (DESIGN.md rule 6)."""
    kinds = [Kind.DELIVERED, Kind.BOUNCED, Kind.SOFT_BOUNCED, Kind.COMPLAINED, Kind.UNSUBSCRIBED]
    if settings.NEWSLETTER_TRACKING:
        kinds += [Kind.OPENED, Kind.CLICKED]
    return [str(kind) for kind in kinds]


def issue_outcome(issue: Issue) -> IssueOutcome:
    """Readers of this issue per kind of event (a reader whose message bounced twice
    counts once), and how many it was sent to."""
    # From the figures kept on the issue (newsletter.progress), not a count of its rows.
    sent = progress.sent_count(issue)
    if progress.is_retired(issue):
        rows = issue.progress_counts.get(progress.OUTCOME, {}).items()
    else:
        rows = progress.outcome_counts(issue.pk).items()
    counts = dict.fromkeys(shown_kinds(), 0)
    counts.update({kind: readers for kind, readers in rows if kind in counts})
    return IssueOutcome(sent=sent, counts=counts)


def readers_with_outcome(*, issue_id: int, kind: str) -> "QuerySet[Subscriber, Subscriber]":
    """The readers behind one figure of `issue_outcome`: those with an event of `kind`
    for their message of this issue."""
    return Subscriber.objects.filter(
        pk__in=DeliveryEvent.objects.filter(delivery__issue_id=issue_id, kind=kind).values(
            "delivery__subscriber_id"
        )
    )


@dataclass(frozen=True)
class IssueRates:
    issue: Issue
    sent: int
    bounced: int
    complained: int

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complained / self.sent if self.sent else 0.0

    @property
    def over_line(self) -> bool:
        return self.complaint_rate > COMPLAINT_LINE

    @property
    def bounce_percent(self) -> float:
        return self.bounce_rate * 100

    @property
    def complaint_percent(self) -> float:
        return self.complaint_rate * 100


@dataclass(frozen=True)
class MonthFlow:
    month: date
    joined: int
    unsubscribed: int
    suppressed: int
    erased: int

    @property
    def net(self) -> int:
        return self.joined - self.unsubscribed - self.suppressed - self.erased


@dataclass(frozen=True)
class ListHealth:
    today: dict[str, int]
    snapshots: list[ListSnapshot]
    months: list[MonthFlow]
    issues: list[IssueRates]


def take_snapshot() -> ListSnapshot:
    """Record today's subscribers per status (run by the periodic task; idempotent:
    a later run the same day replaces that day's figures)."""
    snapshot, _ = ListSnapshot.objects.update_or_create(
        day=timezone.localdate(), defaults={"counts": _status_counts()}
    )
    return snapshot


def list_health(*, months: int = 12, issues: int = 12) -> ListHealth:
    """The list at a glance: subscribers per status now and on each day a snapshot
    was taken; who joined (confirmed) and left per month, from the consent log; bounce
    and complaint rates of the latest sent issues."""
    since = _months_ago(months - 1)
    flows = (
        ConsentEvent.objects.filter(created_at__gte=since)
        .annotate(month=TruncMonth("created_at"))
        .values_list("month", "kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    by_month: dict[date, dict[str, int]] = {}
    for month, kind, n in flows:
        day = month.date() if isinstance(month, datetime) else month
        by_month.setdefault(day, {})[kind] = n
    month_rows = []
    for offset in range(months):
        day = _months_ago(months - 1 - offset).date()
        kinds = by_month.get(day, {})
        month_rows.append(
            MonthFlow(
                month=day,
                joined=kinds.get(ConsentEvent.Kind.CONFIRM, 0),
                unsubscribed=kinds.get(ConsentEvent.Kind.UNSUBSCRIBE, 0),
                suppressed=kinds.get(ConsentEvent.Kind.SUPPRESSED, 0),
                erased=kinds.get(ConsentEvent.Kind.ERASED, 0),
            )
        )
    latest = list(
        Issue.objects.filter(status__in=[Issue.Status.SENT, Issue.Status.SENDING])
        .exclude(send_started_at=None)
        .order_by("-send_started_at")[:issues]
    )
    reported = (
        DeliveryEvent.objects.filter(
            delivery__issue__in=latest, kind__in=[Kind.BOUNCED, Kind.COMPLAINED]
        )
        .values_list("delivery__issue", "kind")
        .annotate(readers=Count("delivery", distinct=True))
        .order_by()
    )
    per_issue: dict[tuple[int, str], int] = {(i, k): n for i, k, n in reported}
    for issue in latest:
        if progress.is_retired(issue):
            for kind, readers in issue.progress_counts.get(progress.OUTCOME, {}).items():
                per_issue[(issue.pk, kind)] = readers
    return ListHealth(
        today=_status_counts(),
        snapshots=list(ListSnapshot.objects.order_by("-day")[:400])[::-1],
        months=month_rows,
        issues=[
            IssueRates(
                issue=issue,
                sent=progress.sent_count(issue),
                bounced=per_issue.get((issue.pk, Kind.BOUNCED), 0),
                complained=per_issue.get((issue.pk, Kind.COMPLAINED), 0),
            )
            for issue in reversed(latest)
        ],
    )


def _status_counts() -> dict[str, int]:
    counts = dict.fromkeys(Subscriber.Status.values, 0)
    counts.update(dict(Subscriber.objects.values_list("status").annotate(n=Count("pk")).order_by()))
    return counts


def _months_ago(months: int) -> datetime:
    """The first moment of the month `months` before this one, in local time."""
    today = timezone.localdate()
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    return timezone.make_aware(datetime(year, month + 1, 1))  # noqa: DTZ001
