"""Two-person approval (rule 9): nothing reaches readers without a clinical reviewer's
approval of exactly what is sent, by someone who neither wrote nor last edited it.

An approval records a fingerprint of the version approved: the subject, the rendered
HTML and text, the target topics and the language (not the reader count, which changes
every minute). The approval holds while the issue's fingerprint is the same; any edit
to the issue or to one of its pieces changes it, which voids the approval. So does a
piece whose clinical review has become overdue. `require_valid` is the one check that
every sending path (start, schedule, the periodic task, series, any API) calls.
"""

import difflib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import Max, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from newsletter import composing
from newsletter.errors import NewsletterError
from newsletter.models import EducationPiece, Issue, IssueReview

REVIEWERS_GROUP = "Clinical reviewers"
Decision = IssueReview.Decision
User = AuthUser | AnonymousUser


class ApprovalMissing(NewsletterError):
    """The issue has no valid approval; `state` says why."""

    def __init__(self, state: "ApprovalState") -> None:
        super().__init__(state.explanation())
        self.state = state


class NotAllowedToApprove(NewsletterError):
    """This person may not approve this issue (not a reviewer, or its author/editor)."""


class StaleVersion(NewsletterError):
    """The issue changed after the reviewer opened it: they must look again."""


def fingerprint(issue: Issue) -> str:
    """A SHA-256 of what readers would get: subject, rendered HTML and text, target
    topics and language."""
    rendered = composing.render_issue(issue)
    topics = ",".join(str(pk) for pk in sorted(issue.topics.values_list("pk", flat=True)))
    digest = hashlib.sha256()
    for part in (rendered.subject, rendered.html, rendered.text, topics, issue.language):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def review_overdue(piece: EducationPiece) -> bool:
    """Whether the piece's clinical review is past due: it may not go into an issue,
    and it voids the approval of every unsent issue containing it."""
    return piece.review_due is not None and piece.review_due < timezone.localdate()


def pieces_due_for_review(*, within_days: int) -> "QuerySet[EducationPiece]":
    """Pieces whose clinical review is overdue or falls due within this many days."""
    horizon = timezone.localdate() + timedelta(days=within_days)
    return EducationPiece.objects.filter(review_due__lte=horizon).order_by("review_due")


def overdue_pieces(issue: Issue) -> "QuerySet[EducationPiece]":
    return issue.pieces.filter(review_due__lt=timezone.localdate())


@dataclass(frozen=True)
class ApprovalState:
    """Where an issue stands: approved (by whom, when), or why not."""

    valid: bool
    approval: IssueReview | None  # the latest approval, valid or voided
    voided_at: datetime | None  # when an edit voided `approval`
    overdue: list[str]  # titles of pieces whose clinical review is overdue
    required: bool

    def explanation(self) -> str:
        if self.valid:
            if not self.required:
                return _("Approval is not required (NEWSLETTER_REQUIRE_APPROVAL is off).")
            if self.approval is None:
                return _("Approved.")
            return _("Approved by %(name)s on %(when)s.") % {
                "name": reviewer_name(self.approval),
                "when": f"{timezone.localtime(self.approval.created_at):%Y-%m-%d %H:%M}",
            }
        if self.overdue:
            return _(
                "Not approved: the clinical review of %(pieces)s is overdue; "
                "renew it before this can be approved or sent."
            ) % {"pieces": ", ".join(self.overdue)}
        if self.approval is not None and self.voided_at is not None:
            return _(
                "The approval by %(name)s was voided by an edit on %(when)s; "
                "a clinical reviewer must approve it again."
            ) % {
                "name": reviewer_name(self.approval),
                "when": f"{timezone.localtime(self.voided_at):%Y-%m-%d %H:%M}",
            }
        return _("Not approved yet: a clinical reviewer must approve it before it is sent.")


def reviewer_name(review: IssueReview) -> str:
    reviewer = review.reviewer
    if reviewer is None:
        return _("a former user")
    return reviewer.get_full_name() or reviewer.get_username()


def last_edited_at(issue: Issue) -> datetime:
    latest = issue.pieces.aggregate(latest=Max("updated_at"))["latest"]
    return max(issue.updated_at, latest) if latest else issue.updated_at


def approval_state(issue: Issue) -> ApprovalState:
    """Whether the issue, as it is now, carries a valid approval."""
    approval = issue.reviews.filter(decision=Decision.APPROVED).order_by("-created_at").first()
    overdue = list(overdue_pieces(issue).values_list("title", flat=True))
    required = settings.NEWSLETTER_REQUIRE_APPROVAL
    if not required:
        return ApprovalState(True, approval, None, overdue, required)
    if approval is None:
        return ApprovalState(False, None, None, overdue, required)
    matches = approval.fingerprint == fingerprint(issue)
    voided_at = None if matches else last_edited_at(issue)
    return ApprovalState(matches and not overdue, approval, voided_at, overdue, required)


def require_valid(issue: Issue) -> None:
    """Raise ApprovalMissing unless the issue as it is now has a valid approval. Every
    path that sends or schedules calls this."""
    state = approval_state(issue)
    if not state.valid:
        raise ApprovalMissing(state)


def excluded_approvers(issue: Issue) -> set[int]:
    """Ids of the people who may not approve this issue: its author and the last
    editors of the issue and of its pieces."""
    ids = {issue.author_id, issue.last_edited_by_id}
    ids.update(issue.pieces.values_list("last_edited_by_id", flat=True))
    return {pk for pk in ids if pk is not None}


def can_approve(issue: Issue, user: User) -> bool:
    return (
        user.is_authenticated
        and user.has_perm("newsletter.approve_issue")
        and user.pk not in excluded_approvers(issue)
    )


def possible_approvers(issue: Issue) -> list[str]:
    """Names of the active reviewers who may approve this issue."""
    UserModel = get_user_model()
    reviewers = (
        UserModel.objects.filter(is_active=True)
        .filter(
            Q(groups__name=REVIEWERS_GROUP)
            | Q(user_permissions__codename="approve_issue")
            | Q(is_superuser=True)
        )
        .exclude(pk__in=excluded_approvers(issue))
        .distinct()
        .order_by("username")
    )
    return [user.get_full_name() or user.get_username() for user in reviewers]


def review_issue(
    *, issue_id: int, reviewer: User, decision: str, comment: str = "", seen: str = ""
) -> IssueReview:
    """Record a reviewer's decision on the issue as it is now.

    An approval needs a reviewer allowed to approve (can_approve) and no piece with an
    overdue review. `seen` is the fingerprint the reviewer looked at: if the issue
    changed since, StaleVersion is raised and nothing is recorded.
    """
    issue = Issue.objects.get(pk=issue_id)
    if not (reviewer.is_authenticated and reviewer.has_perm("newsletter.approve_issue")):
        raise NotAllowedToApprove(_("Only a clinical reviewer can review an issue."))
    current = fingerprint(issue)
    if seen and seen != current:
        raise StaleVersion(_("The issue changed while you were reviewing it."))
    if decision == Decision.APPROVED:
        if not can_approve(issue, reviewer):
            raise NotAllowedToApprove(
                _(
                    "You wrote or last edited this issue or one of its pieces; "
                    "another reviewer must approve it."
                )
            )
        if overdue_pieces(issue).exists():
            raise ApprovalMissing(approval_state(issue))
    rendered = composing.render_issue(issue)
    return IssueReview.objects.create(
        issue=issue,
        reviewer=reviewer if isinstance(reviewer, AuthUser) else None,
        decision=decision,
        comment=comment,
        fingerprint=current,
        subject=rendered.subject,
        text=rendered.text,
    )


def awaiting_review() -> "QuerySet[Issue]":
    """Unsent issues (and active series steps) a reviewer may need to look at."""
    return Issue.objects.filter(
        status__in=[Issue.Status.DRAFT, Issue.Status.SCHEDULED, Issue.Status.PAUSED]
    ).order_by("-updated_at")


def last_seen_review(issue: Issue, reviewer: User | None = None) -> IssueReview | None:
    """What this reviewer last saw of the issue (their latest review), or failing that
    the latest review by anyone."""
    reviews = issue.reviews.order_by("-created_at", "-pk")
    own = reviews.filter(reviewer_id=reviewer.pk).first() if reviewer and reviewer.pk else None
    return own or reviews.first()


def diff_since_last_review(issue: Issue, reviewer: User | None = None) -> list[str]:
    """The text diff between what this reviewer last saw (see last_seen_review) and the
    issue now (empty when nobody reviewed it, or nothing changed)."""
    last = last_seen_review(issue, reviewer)
    if last is None:
        return []
    now = composing.render_issue(issue)
    before = [f"Subject: {last.subject}", *last.text.splitlines()]
    after = [f"Subject: {now.subject}", *now.text.splitlines()]
    return list(difflib.unified_diff(before, after, "last reviewed", "now", lineterm="", n=2))


@dataclass(frozen=True)
class HistoryEntry:
    when: datetime
    what: str
    who: str
    comment: str = ""


def history(issue: Issue) -> list[HistoryEntry]:
    """Written by, reviewed by, approved by, scheduled, sent: each with its time."""
    author = issue.author.get_username() if issue.author else ""
    entries = [HistoryEntry(issue.created_at, _("Written"), author)]
    for review in issue.reviews.select_related("reviewer"):
        entries.append(
            HistoryEntry(
                review.created_at,
                _("Approved") if review.decision == Decision.APPROVED else _("Changes requested"),
                reviewer_name(review),
                review.comment,
            )
        )
    if issue.scheduled_at:
        entries.append(HistoryEntry(issue.scheduled_at, _("Scheduled for"), ""))
    if issue.send_started_at:
        entries.append(HistoryEntry(issue.send_started_at, _("Sending started"), ""))
    if issue.sent_at:
        entries.append(HistoryEntry(issue.sent_at, _("Sent"), ""))
    return sorted(entries, key=lambda entry: entry.when)


def hold_scheduled(*, issue_id: int, error: ApprovalMissing) -> None:
    """A scheduled issue came due without a valid approval: it goes back to draft,
    unsent, and the publisher reads why on the issue."""
    Issue.objects.filter(pk=issue_id, status=Issue.Status.SCHEDULED).update(
        status=Issue.Status.DRAFT,
        last_error=_("Not sent at its scheduled time: %(why)s") % {"why": str(error)},
    )
