"""How far an issue's send has got: the ledger's figures, kept on the issue.

Counting a million Delivery rows takes a few hundred milliseconds; the progress page,
`send_issue --wait` and the list-health pages ask every second or so. So the counts
(rows per status and the rows flagged `maybe_duplicate`) are counted from the ledger
at most every NEWSLETTER_PROGRESS_SECONDS while an issue sends, stored on the issue
with the time they were counted, and counted once more when the send ends. Those
final figures are what the reports show after the issue's Delivery rows are removed
by the retention policy (`retire_old_deliveries`), so a report never needs the rows.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from newsletter.models import Delivery, DeliveryEvent, Issue, Subscriber

Row = Delivery.Status

# Keys of Issue.progress_counts besides the statuses.
MAYBE_DUPLICATES = "maybe_duplicate"
RATE = "rate"
FINAL = "final"


# The window recent_rate measures over: long enough to smooth out batch-sized steps,
# short enough to follow a rate limit change or a pause.
RATE_WINDOW_SECONDS = 60


def estimate_seconds_left(*, remaining: int, rate: float) -> float | None:
    """Seconds until `remaining` rows are done at `rate` rows per second: 0 when nothing
    is left, None when nothing was sent recently (no rate to go by, e.g. paused)."""
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return None
    return remaining / rate


@dataclass(frozen=True)
class Progress:
    counts: dict[str, int]
    total: int
    rate: float  # recipients per second between the last two counts
    maybe_duplicates: int
    counted_at: datetime | None = None

    @property
    def done(self) -> int:
        return self.counts[Row.SENT] + self.counts[Row.FAILED] + self.counts[Row.SKIPPED]

    @property
    def remaining(self) -> int:
        return self.counts[Row.QUEUED] + self.counts[Row.SENDING]

    @property
    def seconds_left(self) -> float | None:
        """The time-left estimate every screen shows (the progress page, its JSON,
        `send_issue --wait`): the rows still to go at the recent rate."""
        return estimate_seconds_left(remaining=self.remaining, rate=self.rate)


def recent_rate(issue: Issue, *, now: datetime | None = None) -> float:
    """Rows sent per second over the last RATE_WINDOW_SECONDS, from the rows themselves
    (a send that started inside the window is measured from its first row). It reads
    the issue's rows sent in the window: for a one-off look, not for a page that
    refreshes; issue_progress's rate comes from the kept counts instead."""
    now = now or timezone.now()
    since = now - timedelta(seconds=RATE_WINDOW_SECONDS)
    recent = Delivery.objects.filter(issue=issue, status=Row.SENT, sent_at__gte=since)
    figures = recent.aggregate(sent=Count("pk"), first=Min("sent_at"))
    if not figures["sent"]:
        return 0.0
    elapsed = (now - figures["first"]).total_seconds()
    return figures["sent"] / max(elapsed, 1.0)


def count_ledger(issue_id: int) -> dict[str, int]:
    """Rows of this issue per status, and how many may be duplicates: one query over
    the issue's rows (the one place that reads them all)."""
    counts = dict.fromkeys(Row.values, 0)
    rows = (
        Delivery.objects.filter(issue_id=issue_id)
        .values_list("status")
        .annotate(rows=Count("pk"), doubtful=Count("pk", filter=Q(maybe_duplicate=True)))
        .order_by()
    )
    doubtful = 0
    for status, number, maybe in rows:
        counts[status] = number
        doubtful += maybe
    counts[MAYBE_DUPLICATES] = doubtful
    return counts


def recount(issue: Issue, *, final: bool = False) -> dict[str, int | float | bool]:
    """Count the ledger now and keep the figures on the issue. The rate is the sent rows
    since the previous count over the time between the two."""
    now = timezone.now()
    counts: dict[str, int | float | bool] = dict(count_ledger(issue.pk))
    previous, counted_at = issue.progress_counts or {}, issue.progress_counted_at
    rate = 0.0
    if counted_at and previous and not previous.get(FINAL) and now > counted_at:
        sent_since = int(counts[Row.SENT]) - int(previous.get(Row.SENT, 0))
        rate = max(0.0, sent_since / (now - counted_at).total_seconds())
    elif started := Issue.objects.filter(pk=issue.pk).values_list("send_started_at", flat=True)[0]:
        # The first count of this send: the average since it started.
        rate = int(counts[Row.SENT]) / max((now - started).total_seconds(), 0.001)
    counts[RATE] = round(rate, 3)
    counts[FINAL] = final
    Issue.objects.filter(pk=issue.pk).update(progress_counts=counts, progress_counted_at=now)
    issue.progress_counts, issue.progress_counted_at = counts, now
    return counts


def record_final(*, issue_id: int) -> None:
    """The send ended (sent, cancelled): count once more and keep it as the record."""
    issue = Issue.objects.only(
        "pk", "send_started_at", "progress_counts", "progress_counted_at"
    ).get(pk=issue_id)
    recount(issue, final=True)


def _fresh(issue: Issue, now: datetime) -> bool:
    counts, counted_at = issue.progress_counts, issue.progress_counted_at
    if not counts or counted_at is None:
        return False
    if counts.get(FINAL) and issue.status in (Issue.Status.SENT, Issue.Status.CANCELLED):
        return True
    return now - counted_at < timedelta(seconds=settings.NEWSLETTER_PROGRESS_SECONDS)


def issue_progress(issue: Issue) -> Progress:
    """The issue's figures as last counted; counted again first when they are older than
    NEWSLETTER_PROGRESS_SECONDS (final figures of an ended send are never recounted)."""
    now = timezone.now()
    ended = issue.status in (Issue.Status.SENT, Issue.Status.CANCELLED)
    counts = issue.progress_counts if _fresh(issue, now) else recount(issue, final=ended)
    by_status = {status: int(counts.get(status, 0)) for status in Row.values}
    return Progress(
        counts=by_status,
        total=sum(by_status.values()),
        rate=float(counts.get(RATE, 0.0)),
        maybe_duplicates=int(counts.get(MAYBE_DUPLICATES, 0)),
        counted_at=issue.progress_counted_at,
    )


def sent_count(issue: Issue) -> int:
    """Readers this issue was sent to, from the kept figures."""
    return issue_progress(issue).counts[Row.SENT]


# --- Retention of the ledger ---------------------------------------------------------------

RETIRED = "retired"
OUTCOME = "outcome"
RETIRE_CHUNK = 5000


def is_retired(issue: Issue) -> bool:
    """Its Delivery rows were removed by the retention policy: only its kept figures
    (sent, failed, ..., and readers per ESP event) remain."""
    return bool((issue.progress_counts or {}).get(RETIRED))


def outcome_counts(issue_id: int) -> dict[str, int]:
    """Readers of this issue per kind of ESP event (a reader counted once per kind)."""
    rows = (
        DeliveryEvent.objects.filter(delivery__issue_id=issue_id)
        .values_list("kind")
        .annotate(readers=Count("delivery", distinct=True))
        .order_by()
    )
    return dict(rows)


def retire_old_deliveries(*, now: datetime | None = None) -> int:
    """Remove the Delivery rows of issues sent or cancelled more than
    NEWSLETTER_DELIVERY_DAYS ago (0: never), first keeping on the issue its final
    counts and its readers per ESP event, so every report still shows them. Welcome
    series steps keep their rows: they are what makes each step reach a reader once.
    Returns the rows removed."""
    days = settings.NEWSLETTER_DELIVERY_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = Issue.objects.filter(
        kind=Issue.Kind.ISSUE, status__in=[Issue.Status.SENT, Issue.Status.CANCELLED]
    ).filter(Q(sent_at__lt=cutoff) | Q(sent_at=None, updated_at__lt=cutoff))
    removed = 0
    for issue in old.only("pk", "status", "send_started_at", "progress_counts"):
        if is_retired(issue):
            continue
        counts = recount(issue, final=True)
        counts[OUTCOME] = outcome_counts(issue.pk)  # type: ignore[assignment]
        counts[RETIRED] = True
        Issue.objects.filter(pk=issue.pk).update(progress_counts=counts)
        # Its events stay (they are the list's history) but lose the link to the row.
        DeliveryEvent.objects.filter(delivery__issue_id=issue.pk).update(delivery=None)
        while ids := list(
            Delivery.objects.filter(issue_id=issue.pk).values_list("pk", flat=True)[:RETIRE_CHUNK]
        ):
            removed += Delivery.objects.filter(pk__in=ids).delete()[0]
    return removed


def time_left_text(seconds: float | None) -> str:
    """The estimate in words, rounded as a person would say it (the progress page,
    the start page)."""
    if seconds is None:
        return gettext("Time left: not known until sending resumes.")
    if seconds < 60:
        return gettext("Less than a minute left.")
    minutes = round(seconds / 60)
    if minutes < 90:
        return ngettext("About %(n)d minute left.", "About %(n)d minutes left.", minutes) % {
            "n": minutes
        }
    hours = round(seconds / 3600, 1)
    return gettext("About %(n)s hours left.") % {"n": f"{hours:g}"}


def readers_with_delivery_status(
    *, issue_id: int, status: str
) -> "QuerySet[Subscriber, Subscriber]":
    """The readers behind one of the progress figures: this issue's rows in `status`."""
    return Subscriber.objects.filter(
        pk__in=Delivery.objects.filter(issue_id=issue_id, status=status).values("subscriber_id")
    )
