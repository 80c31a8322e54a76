"""What each person sees first in the admin: the figures their role acts on.

Editors: their drafts, changes reviewers asked for, and education pieces whose clinical
review is overdue or due soon. Publishers: issues ready to send (approved drafts),
scheduled, sending now (with the time left) and paused, and the last sends' outcomes.
Clinical reviewers: what awaits their approval. Operators (whoever may see the
subscribers): list health. Each figure names the admin list it counts, filtered, so
the page can link every number to the rows behind it. Selectors only: nothing here
writes.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Max, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from newsletter import approval, sending, tracking
from newsletter.models import Delivery, DeliveryEvent, EducationPiece, Issue, Subscriber

LAST_SENDS = 5

Status = Issue.Status


@dataclass(frozen=True)
class Figure:
    """One count and the admin changelist it counts: `model` ("issue", "subscriber",
    ...) and the filter `query` that lists exactly those rows."""

    label: str
    count: int
    model: str
    query: dict[str, str] = field(default_factory=dict)
    attention: bool = False  # shown as needing someone's action when non-zero


@dataclass(frozen=True)
class IssueLine:
    """An issue on the start page, with its own figures (e.g. one sent issue's outcome)."""

    issue: Issue
    note: str = ""
    figures: list[Figure] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    role: str  # editor | publisher | reviewer | operator
    title: str
    figures: list[Figure]
    issues: list[IssueLine] = field(default_factory=list)
    note: str = ""


def ready_to_send() -> "QuerySet[Issue]":
    """Drafts that carry a valid clinical approval: a publisher can send them now."""
    drafts = Issue.objects.filter(kind=Issue.Kind.ISSUE, status=Status.DRAFT)
    ready = [issue.pk for issue in drafts if approval.approval_state(issue).valid]
    return Issue.objects.filter(pk__in=ready)


def _status_figure(label: str, status: str, **extra: str) -> Figure:
    issues = Issue.objects.filter(kind=Issue.Kind.ISSUE, status=status)
    if "author__id__exact" in extra:
        issues = issues.filter(author_id=int(extra["author__id__exact"]))
    return Figure(label, issues.count(), "issue", {"status__exact": status, **extra})


def editor_section(user: "User | AnonymousUser") -> Section:
    today = timezone.localdate()
    overdue = EducationPiece.objects.filter(review_due__lt=today).count()
    notice = settings.NEWSLETTER_REVIEW_NOTICE_DAYS  # the pieces list's "due soon" filter
    due_soon = EducationPiece.objects.filter(
        review_due__gte=today, review_due__lte=today + timedelta(days=notice)
    ).count()
    mine = Issue.objects.filter(kind=Issue.Kind.ISSUE, status=Status.DRAFT, author_id=user.pk)
    return Section(
        role="editor",
        title=str(_("Writing")),
        figures=[
            _status_figure(str(_("Your drafts")), Status.DRAFT, author__id__exact=str(user.pk)),
            Figure(
                str(_("Pieces overdue for clinical review")),
                overdue,
                "educationpiece",
                {"review": "overdue"},
                attention=True,
            ),
            Figure(
                _("Pieces due for review within %(days)d days") % {"days": notice},
                due_soon,
                "educationpiece",
                {"review": "due-soon"},
            ),
        ],
        issues=[
            IssueLine(issue, approval.approval_state(issue).explanation())
            for issue in mine.order_by("-updated_at")[:LAST_SENDS]
        ],
    )


def outcome_figures(issue: Issue) -> list[Figure]:
    progress = sending.issue_progress(issue)
    outcome = tracking.issue_outcome(issue)
    figures = [
        Figure(
            str(_("sent")),
            progress.counts[Delivery.Status.SENT],
            "subscriber",
            {"delivery": f"{issue.pk}:{Delivery.Status.SENT}"},
        ),
        Figure(
            str(_("failed")),
            progress.counts[Delivery.Status.FAILED],
            "subscriber",
            {"delivery": f"{issue.pk}:{Delivery.Status.FAILED}"},
            attention=True,
        ),
    ]
    for kind in (DeliveryEvent.Kind.BOUNCED, DeliveryEvent.Kind.COMPLAINED):
        figures.append(
            Figure(
                str(DeliveryEvent.Kind(kind).label).lower(),
                outcome.counts.get(kind, 0),
                "subscriber",
                {"outcome": f"{issue.pk}:{kind}"},
                attention=True,
            )
        )
    return figures


def publisher_section() -> Section:
    sending_now = Issue.objects.filter(kind=Issue.Kind.ISSUE, status=Status.SENDING)
    lines = []
    for issue in sending_now.order_by("send_started_at"):
        progress = sending.issue_progress(issue)
        lines.append(IssueLine(issue, _sending_note(progress), outcome_figures(issue)))
    last_sent = Issue.objects.filter(kind=Issue.Kind.ISSUE, status=Status.SENT).order_by(
        "-sent_at"
    )[:LAST_SENDS]
    lines += [IssueLine(issue, "", outcome_figures(issue)) for issue in last_sent]
    ready = ready_to_send().count()
    return Section(
        role="publisher",
        title=str(_("Sending")),
        figures=[
            Figure(str(_("Ready to send (approved drafts)")), ready, "issue", {"ready": "yes"}),
            _status_figure(str(_("Scheduled")), Status.SCHEDULED),
            _status_figure(str(_("Sending now")), Status.SENDING),
            _status_figure(str(_("Paused")), Status.PAUSED),
        ],
        issues=lines,
    )


def _sending_note(progress: sending.Progress) -> str:
    return f"{progress.done} / {progress.total}. {sending.time_left_text(progress.seconds_left)}"


def reviewer_section() -> Section:
    waiting = approval.awaiting_review().filter(kind=Issue.Kind.ISSUE)
    unapproved = [issue for issue in waiting if not approval.approval_state(issue).valid]
    return Section(
        role="reviewer",
        title=str(_("Clinical review")),
        figures=[
            Figure(
                str(_("Issues awaiting approval")),
                len(unapproved),
                "issueforreview",
                attention=True,
            ),
        ],
    )


def operator_section() -> Section:
    counts = dict(Subscriber.objects.values_list("status").annotate(n=Count("pk")).order_by())
    figures = [
        Figure(
            str(label),
            counts.get(status, 0),
            "subscriber",
            {"status__exact": status},
            attention=status in (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED),
        )
        for status, label in Subscriber.Status.choices
    ]
    week_ago = timezone.localdate() - timedelta(days=7)
    stale_pending = Subscriber.objects.filter(
        status=Subscriber.Status.PENDING, created_at__date__lt=week_ago
    ).count()
    figures.append(
        Figure(
            str(_("Pending for over a week")),
            stale_pending,
            "subscriber",
            {"status__exact": Subscriber.Status.PENDING, "created_at__date__lt": str(week_ago)},
        )
    )
    last_event = DeliveryEvent.objects.aggregate(last=Max("received_at"))["last"]
    day_ago = timezone.now() - timedelta(days=1)
    recent = DeliveryEvent.objects.filter(received_at__gte=day_ago).count()
    figures.append(Figure(str(_("ESP events in the last 24 hours")), recent, "deliveryevent"))
    note = (
        _("Last ESP event received %(when)s.")
        % {"when": f"{timezone.localtime(last_event):%Y-%m-%d %H:%M}"}
        if last_event
        else _("No ESP event received yet: check the webhook URL and secret at the ESP.")
    )
    return Section(role="operator", title=str(_("List health")), figures=figures, note=str(note))


def start_page(user: "User | AnonymousUser") -> list[Section]:
    """The sections this user's permissions call for, in the order work flows."""
    sections = []
    if user.has_perm("newsletter.change_issue") or user.has_perm(
        "newsletter.change_educationpiece"
    ):
        sections.append(editor_section(user))
    if user.has_perm("newsletter.approve_issue"):
        sections.append(reviewer_section())
    if user.has_perm("newsletter.send_issue"):
        sections.append(publisher_section())
    if user.has_perm("newsletter.view_subscriber"):
        sections.append(operator_section())
    return sections
