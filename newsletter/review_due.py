"""Education content re-reviewed on schedule: what is overdue or falls due soon, the
weekly reminder to the Clinical reviewers, and recording a re-review.

The consequences of an overdue review (it cannot be added to an issue, and it voids
the approval of every unsent issue containing it) are in approval.py.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from newsletter.approval import REVIEWERS_GROUP
from newsletter.models import EducationPiece, add_months


@dataclass(frozen=True)
class DueSummary:
    overdue: int
    due_soon: int  # within NEWSLETTER_REVIEW_NOTICE_DAYS, not yet overdue
    notice_days: int


def summary() -> DueSummary:
    """How many pieces are overdue, and how many fall due soon (two counts)."""
    today = timezone.localdate()
    notice = settings.NEWSLETTER_REVIEW_NOTICE_DAYS
    pieces = EducationPiece.objects.filter(review_due__isnull=False)
    return DueSummary(
        overdue=pieces.filter(review_due__lt=today).count(),
        due_soon=pieces.filter(
            review_due__gte=today, review_due__lte=today + timedelta(days=notice)
        ).count(),
        notice_days=notice,
    )


def due_within(days: int) -> "QuerySet[EducationPiece]":
    """Pieces whose review is overdue or falls due within `days`, soonest first."""
    horizon = timezone.localdate() + timedelta(days=days)
    return EducationPiece.objects.filter(review_due__lte=horizon).order_by("review_due", "title")


def record_rereview(*, piece_ids: list[int], reviewed_by: str, on: date | None = None) -> int:
    """Record that these pieces were clinically reviewed again (by this reviewer, on
    this day, today by default): their review is due NEWSLETTER_REVIEW_MONTHS later.
    Returns how many pieces changed.

    A re-review does not change what readers get, so it voids no approval; but a
    piece that was overdue no longer blocks issues. Deliberately an UPDATE, not a save:
    the piece's content did not change, so its last editor stays who it was."""
    day = on or timezone.localdate()
    due = add_months(day, settings.NEWSLETTER_REVIEW_MONTHS)
    fields: dict[str, object] = {"reviewed_on": day, "review_due": due}
    if reviewed_by.strip():
        fields["reviewed_by"] = reviewed_by.strip()[:200]
    return EducationPiece.objects.filter(pk__in=piece_ids).update(**fields)


def reviewer_addresses() -> list[str]:
    User = get_user_model()
    return sorted(
        set(
            User.objects.filter(groups__name=REVIEWERS_GROUP, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )


def send_reminder() -> int:
    """Email the Clinical reviewers the pieces whose review is overdue or falls due
    within NEWSLETTER_REVIEW_NOTICE_DAYS. Sends nothing when none is due or nobody is
    in the group. Returns how many reviewers it was sent to."""
    days = settings.NEWSLETTER_REVIEW_NOTICE_DAYS
    pieces = list(due_within(days))
    addresses = reviewer_addresses()
    if not pieces or not addresses:
        return 0
    today = timezone.localdate()
    list_url = settings.SITE_URL + reverse("admin:newsletter_educationpiece_changelist")
    context = {
        "pieces": [
            {
                "title": piece.title,
                "due": piece.review_due,
                "overdue": piece.review_due is not None and piece.review_due < today,
                "reviewed_by": piece.reviewed_by,
                "url": settings.SITE_URL
                + reverse("admin:newsletter_educationpiece_change", args=[piece.pk]),
            }
            for piece in pieces
        ],
        "days": days,
        "list_url": list_url + "?review=due-soon",
        "overdue_url": list_url + "?review=overdue",
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
    }
    subject = _("Clinical review: %(count)d education pieces due within %(days)d days") % {
        "count": len(pieces),
        "days": days,
    }
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("newsletter/emails/reviews_due.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        # Colleagues on one team: one message to the whole group.
        to=addresses,
    )
    message.attach_alternative(
        render_to_string("newsletter/emails/reviews_due.html", context), "text/html"
    )
    message.send()
    return len(addresses)
