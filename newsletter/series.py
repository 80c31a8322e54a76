"""Welcome series: each new reader of a topic (in one language) gets the series' steps,
in order, each at its delay after they joined, exactly once.

One design, no second sending engine. Each step is backed by its own Issue (kind
`series_step`): the step's subject, message and piece are copied into it, so it is
rendered, fingerprinted and approved exactly as an issue is (rule 9), and its readers
are rows of the same Delivery ledger, claimed, leased, rate-limited and sent by
`sending.py` through the same ESP adapters on the bulk queue. A step's issue stays
`sending` while it is open (approved, series active): `run_series` adds the rows of
readers whose time has come, in one INSERT ... SELECT per step, and queues lanes for
them. Rows already sent are never touched again, so editing a step changes only what
readers who have not had it yet will get, and only once it is approved again.

Order: a reader gets a step only once their previous step (in the order of delays) is
settled for them (sent, skipped or failed) and they have had no later step, so steps
never overtake each other, a held (unapproved) step holds the readers who reach it,
and a step added later goes only to readers who have not passed its place.

Enrolment: a reader active on the series' topic and language when `run_series` first
sees them starts the series then; readers already on the topic when the series was
created do not get it (`started_at` null). A reader who unsubscribes, is suppressed,
leaves the topic or changes language is stopped for good (`stopped_at`); their rows
already queued are skipped at claim time (rule 2).
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from newsletter import approval, composing, sending
from newsletter.models import (
    Delivery,
    Issue,
    IssuePiece,
    SeriesEnrolment,
    SeriesStep,
    Subscriber,
    WelcomeSeries,
)

logger = logging.getLogger(__name__)

Status = Issue.Status
Row = Delivery.Status
SETTLED = (Row.SENT, Row.SKIPPED, Row.FAILED)


def day() -> timedelta:
    """One series day (NEWSLETTER_SERIES_DAY_SECONDS; shortened for demos)."""
    return timedelta(seconds=settings.NEWSLETTER_SERIES_DAY_SECONDS)


# --- Editors: series and steps -------------------------------------------------------------


def create_series(*, series: WelcomeSeries) -> WelcomeSeries:
    """Save a new series. Readers already on its topic and language do not get it: they
    are enrolled as not started, so only readers who join from now on start it."""
    with transaction.atomic():
        series.save()
        _enrol(series, started_at=None)
    return series


def save_step(*, step: SeriesStep, editor: AuthUser | AnonymousUser | None) -> SeriesStep:
    """Save a step and copy its content into its own Issue (created on the first save),
    which is what reviewers approve and readers get. Any change voids the step's
    approval (its fingerprint changes), and the step is held at once until a
    reviewer approves it again; readers who already had it are not sent it again."""
    user = editor if isinstance(editor, AuthUser) else None
    series = step.series
    with transaction.atomic():
        issue = step.issue if step.issue_id else Issue(kind=Issue.Kind.SERIES_STEP, author=user)
        if not issue.slug:
            issue.slug = f"series-{series.pk}-step-{uuid.uuid4().hex[:12]}"
        issue.subject = step.subject
        issue.intro = step.message
        issue.preheader = step.piece.summary if step.piece else ""
        issue.language = series.language
        issue.last_edited_by = user
        issue.save()
        issue.topics.set([series.topic])
        IssuePiece.objects.filter(issue=issue).exclude(piece=step.piece).delete()
        if step.piece is not None:
            IssuePiece.objects.get_or_create(issue=issue, piece=step.piece)
        # The pieces changed after the issue's own save: mark it edited again so its
        # rendered version (composing.issue_version) moves on.
        Issue.objects.filter(pk=issue.pk).update(updated_at=timezone.now())
        step.issue = issue
        step.save()
    open_step(step_id=step.pk)
    return step


def remove_step(*, step: SeriesStep) -> None:
    """Delete a step. Its issue is cancelled (rows not yet sent are skipped) and kept,
    with its ledger, for the record."""
    issue_id = step.issue_id
    with transaction.atomic():
        step.delete()
        sending.cancel_issue(issue_id=issue_id)


# --- Opening and holding steps -------------------------------------------------------------


def open_step(*, step_id: int) -> bool:
    """Open the step for sending if it may be sent now, else hold it. Returns whether
    it is open.

    Open: the series is active and the step's issue has a valid approval (rule 9).
    Its issue is then `sending`, its frozen body the approved version (refreshed after
    an approved edit). Held: its issue goes back to draft with the reason on it; rows
    already queued wait, and no new ones are added. A step paused by ESP errors or by a
    publisher stays paused until someone resumes it.
    """
    step = SeriesStep.objects.select_related("series").get(pk=step_id)
    with transaction.atomic():
        issue = Issue.objects.select_for_update().get(pk=step.issue_id)
        if issue.status in (Status.PAUSED, Status.CANCELLED, Status.SENT):
            return False
        state = approval.approval_state(issue)
        if not step.series.is_active or not state.valid:
            reason = (
                _("Held: the series is switched off.")
                if not step.series.is_active
                else _("Held: %(why)s") % {"why": state.explanation()}
            )
            if (issue.status, issue.last_error) != (Status.DRAFT, reason):
                # A plain UPDATE: saving would move updated_at, and with it the version.
                Issue.objects.filter(pk=issue.pk).update(status=Status.DRAFT, last_error=reason)
            return False
        rendered = composing.render_issue(issue)
        fields = []
        if (issue.rendered_html, issue.rendered_text) != (rendered.html, rendered.text):
            issue.rendered_html, issue.rendered_text = rendered.html, rendered.text
            fields += ["rendered_html", "rendered_text"]
        if issue.status != Status.SENDING:
            issue.status, issue.last_error = Status.SENDING, ""
            issue.send_started_at = issue.send_started_at or timezone.now()
            fields += ["status", "last_error", "send_started_at"]
        if fields:
            # A plain UPDATE: saving would move updated_at and with it the version.
            Issue.objects.filter(pk=issue.pk).update(
                **{name: getattr(issue, name) for name in fields}
            )
        queued = Delivery.objects.filter(issue=issue, status=Row.QUEUED).count()
        if "status" in fields and queued:
            sending.queue_lanes(issue_id=issue.pk, rows=queued)
    return True


# --- The runner (periodic task and `manage.py run_series`) ---------------------------------


@dataclass(frozen=True)
class RunReport:
    enrolled: int
    stopped: int
    queued: int


def run_series(*, now: datetime | None = None) -> RunReport:
    """Enrol readers who joined a series' topic, stop those who left, open or hold each
    step by its approval, and queue every step that is due for a reader. Safe to run
    as often as you like, from several processes: the ledger's unique row per (step,
    reader) makes a second run add nothing."""
    now = now or timezone.now()
    enrolled = stopped = queued = 0
    for series in WelcomeSeries.objects.order_by("pk"):
        stopped += _stop_leavers(series, now)
        if not series.is_active:
            for step in series.steps.all():
                open_step(step_id=step.pk)  # holds it
            continue
        enrolled += _enrol(series, started_at=now)
        steps = list(series.steps.order_by("delay_days", "position", "pk"))
        for index, step in enumerate(steps):
            if not open_step(step_id=step.pk):
                continue
            previous = steps[index - 1] if index else None
            later = [s.issue_id for s in steps[index:]] if previous else [s.issue_id for s in steps]
            queued += _queue_due(series, step, previous, later, now)
    if enrolled or stopped or queued:
        logger.info(
            "Welcome series: %d readers started, %d stopped, %d emails queued",
            enrolled, stopped, queued,
        )  # fmt: skip
    return RunReport(enrolled=enrolled, stopped=stopped, queued=queued)


def _enrol(series: WelcomeSeries, *, started_at: datetime | None) -> int:
    """Enrol the series' readers who have no enrolment yet, in one statement."""
    enrolment = SeriesEnrolment._meta.db_table
    subscriber = Subscriber._meta.db_table
    topics = Subscriber.topics.through._meta.db_table
    sql = f"""
        INSERT INTO {enrolment} (series_id, subscriber_id, started_at, stopped_at)
        SELECT %s, s.id, %s, NULL
        FROM {subscriber} s
        JOIN {topics} st ON st.subscriber_id = s.id AND st.topic_id = %s
        WHERE s.status = %s AND s.language = %s
          AND NOT EXISTS (
            SELECT 1 FROM {enrolment} e WHERE e.series_id = %s AND e.subscriber_id = s.id
          )
        ON CONFLICT (series_id, subscriber_id) DO NOTHING
    """  # noqa: S608 (table names from the models, values as parameters)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [series.pk, started_at, series.topic_id, Subscriber.Status.ACTIVE,
             series.language, series.pk],
        )  # fmt: skip
        return cursor.rowcount


def _stop_leavers(series: WelcomeSeries, now: datetime) -> int:
    on_topic = Subscriber.topics.through.objects.filter(
        subscriber_id=OuterRef("subscriber_id"), topic_id=series.topic_id
    )
    return (
        SeriesEnrolment.objects.filter(series=series, stopped_at=None, started_at__isnull=False)
        .filter(
            ~Q(subscriber__status=Subscriber.Status.ACTIVE)
            | ~Q(subscriber__language=series.language)
            | ~Exists(on_topic)
        )
        .update(stopped_at=now)
    )


def _queue_due(
    series: WelcomeSeries,
    step: SeriesStep,
    previous: SeriesStep | None,
    later_issue_ids: list[int],
    now: datetime,
) -> int:
    """Queue this step for every reader whose time has come and whose previous step is
    settled, in one INSERT ... SELECT; then queue lanes for the new rows."""
    delivery = Delivery._meta.db_table
    enrolment = SeriesEnrolment._meta.db_table
    subscriber = Subscriber._meta.db_table
    # `later_issue_ids` holds this step and every step after it (after `previous`):
    # a reader who has any of them has passed this point already.
    later = ", ".join(["%s"] * len(later_issue_ids))
    settled = ", ".join(["%s"] * len(SETTLED))
    previous_done = (
        f"""AND EXISTS (
            SELECT 1 FROM {delivery} p
            WHERE p.issue_id = %s AND p.subscriber_id = e.subscriber_id
              AND p.status IN ({settled})
        )"""  # noqa: S608 (table names from the models, values as parameters)
        if previous is not None
        else ""
    )
    sql = f"""
        INSERT INTO {delivery}
            (issue_id, subscriber_id, status, attempts, claim, esp_message_id, error,
             maybe_duplicate, updated_at)
        SELECT %s, e.subscriber_id, %s, 0, '', '', '', %s, %s
        FROM {enrolment} e
        JOIN {subscriber} s ON s.id = e.subscriber_id
        WHERE e.series_id = %s AND e.stopped_at IS NULL
          AND e.started_at IS NOT NULL AND e.started_at <= %s
          AND s.status = %s
          {previous_done}
          AND NOT EXISTS (
            SELECT 1 FROM {delivery} d
            WHERE d.subscriber_id = e.subscriber_id AND d.issue_id IN ({later})
          )
        ON CONFLICT (issue_id, subscriber_id) DO NOTHING
    """  # noqa: S608 (table names from the models, values as parameters)
    params: list[int | str | bool | datetime] = [
        step.issue_id, Row.QUEUED, False, now,
        series.pk, now - step.delay_days * day(), Subscriber.Status.ACTIVE,
    ]  # fmt: skip
    if previous is not None:
        params += [previous.issue_id, *SETTLED]
    params += later_issue_ids
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.rowcount
        if rows:
            sending.queue_lanes(issue_id=step.issue_id, rows=rows)
    return rows


# --- What the series page shows ------------------------------------------------------------


@dataclass(frozen=True)
class StepProgress:
    step: SeriesStep
    approval: str
    held: str  # why the step is not going out, or ""
    waiting: int  # readers in the series who have not had it yet, queued or not
    sent: int
    skipped: int
    failed: int


def series_progress(series: WelcomeSeries) -> list[StepProgress]:
    """Per step: its approval, and how many readers are waiting for it, got it, were
    skipped (left before it went) or failed."""
    steps = list(series.steps.select_related("issue").order_by("delay_days", "position", "pk"))
    counts = {
        (issue_id, status): n
        for issue_id, status, n in Delivery.objects.filter(issue__series_step__series=series)
        .values_list("issue_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    }
    in_progress = SeriesEnrolment.objects.filter(
        series=series, started_at__isnull=False, stopped_at=None
    )
    result = []
    for step in steps:
        not_reached = in_progress.exclude(
            Exists(
                Delivery.objects.filter(
                    issue_id=step.issue_id, subscriber_id=OuterRef("subscriber_id")
                )
            )
        ).count()
        issue = step.issue
        held = issue.last_error if issue.status != Status.SENDING else ""
        result.append(
            StepProgress(
                step=step,
                approval=approval.approval_state(issue).explanation(),
                held=held,
                waiting=not_reached
                + counts.get((issue.pk, Row.QUEUED), 0)
                + counts.get((issue.pk, Row.SENDING), 0),
                sent=counts.get((issue.pk, Row.SENT), 0),
                skipped=counts.get((issue.pk, Row.SKIPPED), 0),
                failed=counts.get((issue.pk, Row.FAILED), 0),
            )
        )
    return result
