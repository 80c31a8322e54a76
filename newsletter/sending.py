"""Sending an issue to the list: exactly once per reader, resumable, at a bounded rate.

The Delivery ledger is the truth. Starting a send snapshots the audience into one
queued row per reader with one set-based insert. Batch tasks then each claim the next
rows in one query (queued, or sending with an expired lease), skip readers who are
no longer active, hand the readers to the configured ESP's adapter (`newsletter.esp`:
one call per batch where the ESP merges per-recipient values itself, one message per
reader elsewhere), and record each call's result as it comes. No database transaction
is open during an ESP call.

The one window for a duplicate: a worker that dies after the ESP accepted a call and
before the rows were marked sent. Its rows are claimed again when the lease expires
and flagged `maybe_duplicate`, so a batch path duplicates at most one call's
recipients, and the per-message path at most one reader. Leases are short and kept
alive while a batch is at the ESP, and an answer the ESP gave while the database was
away is recorded when it is back (`newsletter.leases`).

A lane hands its worker slot back after about a second (`LANE_SECONDS`) by queueing
itself again, so whatever else that worker serves never waits behind a long send.
"""

import contextlib
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, Exists, F, Max, Min, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone, translation

from newsletter import approval, composing, esp, subscriptions
from newsletter.errors import NewsletterError
from newsletter.esp import CallResult, Recipient
from newsletter.leases import (
    DATABASE_ERRORS,
    LeaseKeeper,
    forget_broken_connection,
    lease_period,
    through_outage,
)
from newsletter.models import Delivery, Issue, Subscriber

logger = logging.getLogger(__name__)

Status = Issue.Status
Row = Delivery.Status


class IssueStateError(NewsletterError):
    """The issue is not in a state that allows this (e.g. resuming a draft)."""


class RetryLater(NewsletterError):
    """The ESP could not take the batch now (network, 429, 5xx); the rows were released
    and the batch should be tried again after a backoff."""


class DatabaseUnavailable(NewsletterError):
    """The database did not answer (a restart, a failover); the lane should be tried
    again shortly. Whatever the ESP had accepted was recorded or is still leased."""


# How long one lane task sends before it queues itself again and hands its worker slot
# back: long enough that queueing costs nothing next to the batches it sent, short
# enough that a task queued behind it on the same worker waits about a second.
LANE_SECONDS = 1.0


# --- ESPs --------------------------------------------------------------------------------

# Rows per claim for ESPs sent one message per recipient (see newsletter.esp).
PER_MESSAGE_BATCH_SIZE = 100


def batch_size() -> int:
    limit = esp.adapter().batch_limit
    size = settings.NEWSLETTER_BATCH_SIZE or limit or PER_MESSAGE_BATCH_SIZE
    if limit:
        size = min(size, limit)
    if settings.NEWSLETTER_MAX_RATE:
        # Keep one batch to about five seconds of the rate, so a worker waiting for its
        # turn stays far inside the task time limit.
        size = min(size, max(1, settings.NEWSLETTER_MAX_RATE * 5))
    return size


# --- Publisher actions -------------------------------------------------------------------


def audience(issue: Issue) -> "QuerySet[Subscriber, int]":
    """Ids of the readers who get this issue now: active, of the issue's language, in
    any target topic."""
    return (
        Subscriber.objects.filter(
            status=Subscriber.Status.ACTIVE,
            language=issue.language,
            topics__in=issue.topics.all(),
        )
        .values_list("pk", flat=True)
        .distinct()
    )


def audience_by_topic(issue: Issue) -> tuple[int, list[tuple[str, int]]]:
    """How many readers would get this issue, in total and per target topic."""
    active = Q(subscribers__status=Subscriber.Status.ACTIVE) & Q(
        subscribers__language=issue.language
    )
    per_topic = [
        (topic.name, topic.readers)
        for topic in issue.topics.annotate(readers=Count("subscribers", filter=active))
    ]
    return audience(issue).count(), per_topic


def start_issue(*, issue_id: int) -> int:
    """Start sending a draft or scheduled issue to its audience as it is now.

    Freezes the rendered issue, snapshots the audience into queued Delivery rows with
    one INSERT ... SELECT, and queues the batch tasks after commit. Idempotent: starting
    an issue that is already sending or sent queues nothing. Returns the rows queued.
    """
    with transaction.atomic():
        issue = Issue.objects.select_for_update().get(pk=issue_id)
        if issue.status not in (Status.DRAFT, Status.SCHEDULED):
            return 0
        if issue.kind != Issue.Kind.ISSUE:
            # A welcome-series step goes to each reader at their time (series.py).
            raise IssueStateError("a welcome-series step is sent by its series")
        approval.require_valid(issue)  # rule 9: raises ApprovalMissing
        rendered = composing.render_issue(issue)
        issue.rendered_html, issue.rendered_text = rendered.html, rendered.text
        issue.status = Status.SENDING
        issue.send_started_at = timezone.now()
        issue.last_error = ""  # e.g. why it was held at its scheduled time (approval.py)
        issue.save(
            update_fields=["rendered_html", "rendered_text", "status", "send_started_at",
                           "last_error"]
        )  # fmt: skip
        queued = _snapshot_audience(issue)
        _queue_lanes(issue.pk, queued)
    logger.info("Issue %s: sending to %d readers", issue.pk, queued)
    if not queued:
        finish_if_done(issue_id=issue_id)
    return queued


def _snapshot_audience(issue: Issue) -> int:
    delivery = Delivery._meta.db_table
    subscriber = Subscriber._meta.db_table
    topics = Subscriber.topics.through._meta.db_table
    issue_topics = Issue.topics.through._meta.db_table
    # One set-based insert; ON CONFLICT makes a second start (or a race) a no-op.
    sql = f"""
        INSERT INTO {delivery}
            (issue_id, subscriber_id, status, attempts, claim, esp_message_id, error,
             maybe_duplicate, updated_at)
        SELECT DISTINCT %s, s.id, %s, 0, '', '', '', %s, %s
        FROM {subscriber} s
        JOIN {topics} st ON st.subscriber_id = s.id
        JOIN {issue_topics} it ON it.topic_id = st.topic_id AND it.issue_id = %s
        WHERE s.status = %s AND s.language = %s
        ON CONFLICT (issue_id, subscriber_id) DO NOTHING
    """  # noqa: S608 (table names from the models, values as parameters)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                issue.pk,
                Row.QUEUED,
                False,
                timezone.now(),
                issue.pk,
                Subscriber.Status.ACTIVE,
                issue.language,
            ],
        )
        return cursor.rowcount


def _queue_lanes(issue_id: int, rows: int) -> None:
    """Queue send tasks ("lanes") for this many rows, after commit. Each lane sends
    batch after batch until nothing is left to claim, so the queue holds a few
    messages per issue, not one per batch, and a pause or cancel empties it at once."""
    from newsletter import tasks

    for _ in range(min(settings.NEWSLETTER_LANES, math.ceil(rows / batch_size()))):
        transaction.on_commit(partial(tasks.bulk_send.delay, issue_id))


def queue_lanes(*, issue_id: int, rows: int) -> None:
    """Queue send tasks for rows a caller added to a sending issue's ledger (the
    welcome series adds each step's rows as readers come due: series.py)."""
    _queue_lanes(issue_id, rows)


def schedule_issue(*, issue_id: int, when: datetime) -> None:
    """Have the periodic task start a draft issue at `when`. Raises ApprovalMissing
    unless it is approved (checked again when it comes due)."""
    approval.require_valid(Issue.objects.get(pk=issue_id))
    changed = Issue.objects.filter(
        pk=issue_id, status__in=[Status.DRAFT, Status.SCHEDULED], kind=Issue.Kind.ISSUE
    ).update(status=Status.SCHEDULED, scheduled_at=when)
    if not changed:
        raise IssueStateError("only a draft or scheduled issue can be scheduled")


def pause_issue(*, issue_id: int, reason: str = "") -> bool:
    """Stop claiming new batches; batches already at the ESP finish and are recorded."""
    fields: dict[str, object] = {"status": Status.PAUSED}
    if reason:
        fields["last_error"] = reason
    return bool(Issue.objects.filter(pk=issue_id, status=Status.SENDING).update(**fields))


def resume_issue(*, issue_id: int) -> int:
    """Carry on where a paused send stopped. Rows that failed for an ESP error (their
    reader still active) are queued again; sent rows are never touched. Returns the
    rows queued."""
    with transaction.atomic():
        changed = Issue.objects.filter(pk=issue_id, status=Status.PAUSED).update(
            status=Status.SENDING, error_count=0
        )
        if not changed:
            raise IssueStateError("only a paused issue can be resumed")
        Delivery.objects.filter(
            issue_id=issue_id, status=Row.FAILED, subscriber__status=Subscriber.Status.ACTIVE
        ).update(status=Row.QUEUED, claim="", lease_until=None)
        remaining = Delivery.objects.filter(
            issue_id=issue_id, status__in=[Row.QUEUED, Row.SENDING]
        ).count()
        _queue_lanes(issue_id, remaining)
    return remaining


def cancel_issue(*, issue_id: int) -> bool:
    """Stop for good: nobody else gets it. Rows not yet sent become skipped."""
    with transaction.atomic():
        changed = Issue.objects.filter(
            pk=issue_id,
            status__in=[Status.DRAFT, Status.SCHEDULED, Status.SENDING, Status.PAUSED],
        ).update(status=Status.CANCELLED)
        Delivery.objects.filter(issue_id=issue_id, status=Row.QUEUED).update(
            status=Row.SKIPPED, error="issue cancelled"
        )
    return bool(changed)


# --- One batch ---------------------------------------------------------------------------


def send_batches(*, issue_id: int, seconds: float = LANE_SECONDS) -> float | None:
    """Send batch after batch of this issue for about `seconds`.

    Returns None when nothing is left to claim (or the issue stopped sending), else
    how many seconds from now the lane should carry on: 0 when it stopped for time, a
    short pause when the ESP or the database failed after this run had made progress
    (a new task then starts its backoff afresh). Raises RetryLater when the ESP failed
    before any progress, DatabaseUnavailable when the database did, for the task's own
    backoff.
    """
    deadline = time.monotonic() + seconds
    progressed = False
    while time.monotonic() < deadline:
        try:
            if not send_batch(issue_id=issue_id):
                return None
        except RetryLater:
            if not progressed:
                raise
            return 1.0
        except DATABASE_ERRORS as error:
            forget_broken_connection()
            logger.warning("Issue %s: database unavailable, lane retrying: %s", issue_id, error)
            if not progressed:
                raise DatabaseUnavailable(str(error)) from error
            return 2.0
        progressed = True
    return 0.0


def send_batch(*, issue_id: int) -> int:
    """Claim the next batch of this issue's rows and send it. Returns how many rows it
    claimed (0: nothing left, or the issue is not sending).

    Raises RetryLater when the ESP is unavailable; the rows are released first.
    """
    size = batch_size()
    limiter().wait_for(size)
    claim, recipients = _claim(issue_id, size)
    if not claim:
        finish_if_done(issue_id=issue_id)
        return 0
    if recipients:
        issue = Issue.objects.only(
            "pk", "subject", "rendered_html", "rendered_text", "language"
        ).get(pk=issue_id)
        _dispatch(issue, claim, recipients)
    finish_if_done(issue_id=issue_id)
    return len(recipients)


def _claim(issue_id: int, size: int) -> tuple[str, list[Recipient]]:
    claim = uuid.uuid4().hex
    now = timezone.now()
    table = Delivery._meta.db_table
    issue_table = Issue._meta.db_table
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    # One statement claims the batch. PostgreSQL's SKIP LOCKED lets concurrent workers
    # take disjoint rows; SQLite has one writer at a time (BEGIN IMMEDIATE), which
    # makes the same statement safe there.
    sql = f"""
        UPDATE {table}
        SET status = %s, lease_until = %s, attempts = attempts + 1, claim = %s,
            updated_at = %s, maybe_duplicate = (maybe_duplicate OR status = %s)
        WHERE id IN (
            SELECT id FROM {table}
            WHERE issue_id = %s
              AND (status = %s OR (status = %s AND lease_until < %s))
            ORDER BY id
            LIMIT %s{lock}
        )
        AND EXISTS (SELECT 1 FROM {issue_table} WHERE id = %s AND status = %s)
    """  # noqa: S608 (table names from the models, values as parameters)
    lease = now + lease_period()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            sql,
            [Row.SENDING, lease, claim, now, Row.SENDING,
             issue_id, Row.QUEUED, Row.SENDING, now, size, issue_id, Status.SENDING],
        )  # fmt: skip
        if not cursor.rowcount:
            return "", []
    rows = Delivery.objects.filter(claim=claim).values_list(
        "pk", "subscriber_id", "subscriber__email", "subscriber__first_name",
        "subscriber__secret", "subscriber__status",
    )  # fmt: skip
    recipients, gone = [], []
    for pk, subscriber_id, email, first_name, secret, status in rows:
        # Rule 2: an unsubscribe takes effect at once, even in the middle of a send.
        if status == Subscriber.Status.ACTIVE:
            recipients.append(Recipient(pk, subscriber_id, email, first_name, secret))
        else:
            gone.append(pk)
    if gone:
        Delivery.objects.filter(pk__in=gone, claim=claim).update(
            status=Row.SKIPPED, lease_until=None, error="no longer subscribed"
        )
    return claim, recipients


def _dispatch(issue: Issue, claim: str, recipients: list[Recipient]) -> None:
    """Hand the batch to the ESP's adapter and record each call's result as it comes.
    Whatever the adapter did not get to (a retry, a crash) goes back to the queue.

    The lease is kept alive while the batch is at the ESP. An answer that cannot be
    recorded because the database is away is kept and recorded when it answers again,
    for as long as the lease lasts."""
    adapter = esp.adapter()
    by_id = {r.delivery_id: r for r in recipients}
    with LeaseKeeper(claim) as keeper:
        try:
            # In the issue's language: each reader's salutation, their links to the pages
            # in that language, and the Content-Language header.
            with translation.override(issue.language):
                adapter.prepare(issue)
                for result in adapter.send(issue, recipients):
                    through_outage(
                        partial(_record, issue.pk, claim, by_id, result),
                        until=keeper.expires_at,
                        what=f"recording claim {claim}",
                    )
        finally:
            # If the database stays away, the rows come back when the lease ends.
            with contextlib.suppress(*DATABASE_ERRORS):
                through_outage(
                    partial(_release, claim), until=keeper.expires_at, what=f"releasing {claim}"
                )


def _record(issue_id: int, claim: str, by_id: dict[int, Recipient], result: CallResult) -> None:
    # All of one answer or none of it, so recording it again after an outage is exact.
    with transaction.atomic():
        if result.sent:
            _mark_sent(claim, result.sent, whole_batch=len(result.sent) == len(by_id))
        for delivery_id in result.rejected:
            _reject(claim, by_id[delivery_id], "rejected by the ESP")
        if result.failed:
            _record_call_failure(issue_id, claim, result.failed, result.error)
    if result.retry is not None:
        raise RetryLater(str(result.retry)) from result.retry


def _mark_sent(claim: str, sent: list[tuple[int, str]], *, whole_batch: bool) -> None:
    # Mailgun gives one id per call: usually a single UPDATE marks the whole batch.
    by_message_id: dict[str, list[int]] = {}
    for delivery_id, message_id in sent:
        by_message_id.setdefault(message_id, []).append(delivery_id)
    now = timezone.now()
    rows = Delivery.objects.filter(claim=claim, status=Row.SENDING)
    if len(by_message_id) == 1:
        message_id, ids = next(iter(by_message_id.items()))
        if not whole_batch:
            rows = rows.filter(pk__in=ids)
        rows.update(status=Row.SENT, esp_message_id=message_id, sent_at=now, lease_until=None)
        return
    # One id per recipient (SendGrid, Postmark, SES, per-message sends): one UPDATE per
    # chunk with each row's own id, not one per recipient.
    for start in range(0, len(sent), SENT_CHUNK):
        chunk = sent[start : start + SENT_CHUNK]
        rows.filter(pk__in=[pk for pk, _ in chunk]).update(
            status=Row.SENT,
            esp_message_id=Case(*(When(pk=pk, then=Value(mid)) for pk, mid in chunk)),
            sent_at=now,
            lease_until=None,
        )


# Rows per UPDATE when each has its own message id (two parameters a row).
SENT_CHUNK = 500


def _record_call_failure(issue_id: int, claim: str, failed: list[int], error: str) -> None:
    message = error[:2000]
    Delivery.objects.filter(claim=claim, pk__in=failed, status=Row.SENDING).update(
        status=Row.FAILED, error=message, lease_until=None
    )
    Issue.objects.filter(pk=issue_id).update(error_count=F("error_count") + 1, last_error=message)
    if Issue.objects.filter(pk=issue_id, error_count__gte=settings.NEWSLETTER_MAX_ERRORS).exists():
        pause_issue(issue_id=issue_id, reason=f"Paused after repeated ESP errors: {message}")
        logger.warning("Issue %s paused after repeated ESP errors: %s", issue_id, message)


def _reject(claim: str, recipient: Recipient, reason: str) -> None:
    Delivery.objects.filter(pk=recipient.delivery_id, claim=claim).update(
        status=Row.FAILED, error=reason, lease_until=None
    )
    subscriptions.suppress(
        subscriber_id=recipient.subscriber_id, status=Subscriber.Status.BOUNCED, reason=reason
    )


def _release(claim: str) -> None:
    Delivery.objects.filter(claim=claim, status=Row.SENDING).update(
        status=Row.QUEUED, lease_until=None, claim=""
    )


def pause_after_outage(*, issue_id: int, error: str) -> None:
    """The ESP stayed unavailable through every retry: pause rather than spin."""
    pause_issue(issue_id=issue_id, reason=f"Paused: the ESP stayed unavailable ({error})")


# --- Housekeeping (the periodic task) ----------------------------------------------------


def finish_if_done(*, issue_id: int) -> bool:
    """Mark a sending issue sent once no row is queued or being sent."""
    unfinished = Delivery.objects.filter(
        issue_id=OuterRef("pk"), status__in=[Row.QUEUED, Row.SENDING]
    )
    return bool(
        Issue.objects.filter(pk=issue_id, status=Status.SENDING, kind=Issue.Kind.ISSUE)
        .exclude(Exists(unfinished))
        .update(status=Status.SENT, sent_at=timezone.now())
    )


def run_periodic() -> None:
    """Start scheduled issues that are due, re-queue batches whose worker died (lease
    expired), and finish sends with nothing left to do."""
    now = timezone.now()
    for issue_id in Issue.objects.filter(
        status=Status.SCHEDULED, scheduled_at__lte=now
    ).values_list("pk", flat=True):
        try:
            start_issue(issue_id=issue_id)
        except approval.ApprovalMissing as error:
            approval.hold_scheduled(issue_id=issue_id, error=error)
    expired = (
        Delivery.objects.filter(
            status=Row.SENDING, lease_until__lt=now, issue__status=Status.SENDING
        )
        .values("issue_id")
        .annotate(rows=Count("pk"))
    )
    # Queued rows nobody has touched for a lease period: their task messages were lost
    # (a broker restart, a worker killed before it acknowledged). Queue them again.
    stalled = (
        Issue.objects.filter(status=Status.SENDING)
        .annotate(
            last_activity=Max("deliveries__updated_at"),
            waiting=Count("deliveries", filter=Q(deliveries__status=Row.QUEUED)),
        )
        .filter(waiting__gt=0, last_activity__lt=now - lease_period())
        .values_list("pk", "waiting")
    )
    with transaction.atomic():
        for item in expired:
            logger.warning(
                "Issue %s: %d rows were claimed by a worker that stopped; re-queueing",
                item["issue_id"], item["rows"],
            )  # fmt: skip
            _queue_lanes(item["issue_id"], item["rows"])
        for issue_id, waiting in stalled:
            logger.warning("Issue %s: %d queued rows had no worker; re-queueing", issue_id, waiting)
            _queue_lanes(issue_id, waiting)
    for issue_id in Issue.objects.filter(status=Status.SENDING).values_list("pk", flat=True):
        finish_if_done(issue_id=issue_id)


# --- Progress ----------------------------------------------------------------------------


# The window the send rate (and so the time-left estimate) is measured over: long enough
# to smooth out batch-sized steps, short enough to follow a rate limit change or a pause.
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
    rate: float  # recipients per second over the last RATE_WINDOW_SECONDS
    maybe_duplicates: int

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
    """Rows sent per second over the last RATE_WINDOW_SECONDS. A send that started
    inside the window is measured from its first row, so the estimate is right from
    the first batch instead of starting too slow."""
    now = now or timezone.now()
    since = now - timedelta(seconds=RATE_WINDOW_SECONDS)
    recent = Delivery.objects.filter(issue=issue, status=Row.SENT, sent_at__gte=since)
    figures = recent.aggregate(sent=Count("pk"), first=Min("sent_at"))
    if not figures["sent"]:
        return 0.0
    elapsed = (now - figures["first"]).total_seconds()
    return figures["sent"] / max(elapsed, 1.0)


def issue_progress(issue: Issue) -> Progress:
    rows = Delivery.objects.filter(issue=issue)
    counts = dict.fromkeys(Row.values, 0)
    counts.update(dict(rows.values_list("status").annotate(n=Count("pk")).order_by()))
    return Progress(
        counts=counts,
        total=sum(counts.values()),
        rate=recent_rate(issue),
        maybe_duplicates=rows.filter(maybe_duplicate=True).count(),
    )


# --- A send rate shared by every worker --------------------------------------------------


class RateLimiter:
    """Spaces sends so that all workers together stay under NEWSLETTER_MAX_RATE.

    Each caller reserves its batch's share of time on one shared timeline (the
    "theoretical arrival time" of GCRA) and sleeps until its turn. With Redis the
    timeline lives there, shared by every worker; without it, in this process.
    """

    SCRIPT = """
        local now = redis.call('TIME')
        local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
        local tat = tonumber(redis.call('GET', KEYS[1]) or t)
        if tat < t then tat = t end
        local next_tat = tat + tonumber(ARGV[1])
        local ttl = math.ceil((next_tat - t) * 1000) + 1000
        redis.call('SET', KEYS[1], tostring(next_tat), 'PX', ttl)
        return tostring(tat - t)
    """
    KEY = "advances:send-rate"

    def __init__(self, rate: int, redis_url: str) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._tat = 0.0
        self._script = None
        if rate and redis_url:
            import redis

            self._script = redis.Redis.from_url(redis_url).register_script(self.SCRIPT)

    def wait_for(self, recipients: int) -> float:
        """Block until these recipients may be sent; returns the seconds waited."""
        if not self.rate:
            return 0.0
        cost = recipients / self.rate
        if self._script is not None:
            wait = float(self._script(keys=[self.KEY], args=[cost]))
        else:
            with self._lock:
                now = time.monotonic()
                start = max(self._tat, now)
                self._tat = start + cost
                wait = start - now
        if wait > 0:
            time.sleep(wait)
        return max(wait, 0.0)


_limiters: dict[tuple[int, str], RateLimiter] = {}


def limiter() -> RateLimiter:
    key = (settings.NEWSLETTER_MAX_RATE, settings.REDIS_URL)
    if key not in _limiters:
        _limiters[key] = RateLimiter(*key)
    return _limiters[key]
