"""An issue's delivery progress for staff: the page, and the JSON it polls every few
seconds. Each figure links to the readers behind it. When the database does not answer
(a restart, a failover), both say so and keep retrying instead of answering 500."""

import functools
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from newsletter import sending, tracking
from newsletter.models import Delivery, Issue
from newsletter.progress import time_left_text

UNAVAILABLE = gettext_lazy("Database unavailable, retrying")
POLL_SECONDS = 2


def readers_url(parameter: str, issue: Issue, what: str) -> str:
    query = urlencode({parameter: f"{issue.pk}:{what}"})
    return f"{reverse('admin:newsletter_subscriber_changelist')}?{query}"


def progress_figures(issue: Issue) -> dict[str, object]:
    """Everything the page and its JSON show, from sending.issue_progress and
    tracking.issue_outcome."""
    progress = sending.issue_progress(issue)
    outcome = tracking.issue_outcome(issue)
    live = issue.status == Issue.Status.SENDING
    deliveries = [
        {
            "key": status,
            "label": str(label),
            "readers": progress.counts[status],
            "url": readers_url("delivery", issue, status),
        }
        for status, label in Delivery.Status.choices
    ]
    outcomes = [
        {
            "key": row.kind,
            "label": str(row.label),
            "readers": row.readers,
            "percent": round(row.percent, 2),
            "url": readers_url("outcome", issue, row.kind),
        }
        for row in outcome.rows()
    ]
    return {
        "status": issue.status,
        "status_label": str(issue.get_status_display()),
        "live": live,
        "counts": progress.counts,
        "counted_at": progress.counted_at.isoformat() if progress.counted_at else None,
        "total": progress.total,
        "done": progress.done,
        "remaining": progress.remaining,
        "rate": round(progress.rate, 1),
        "seconds_left": progress.seconds_left if live else None,
        "time_left": time_left_text(progress.seconds_left) if live else "",
        "maybe_duplicates": progress.maybe_duplicates,
        "deliveries": deliveries,
        "sent": outcome.sent,
        "outcomes": outcomes,
        "complaints_over_line": outcome.complaints_over_line,
    }


def database_guard(view: Callable[..., HttpResponse], *, json: bool) -> Callable[..., HttpResponse]:
    """Answer "Database unavailable, retrying" (503, Retry-After) when the database does
    not answer anywhere in the view, the login check included. Outside admin_view, and
    the template rendered inside, so every query is covered."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
            if isinstance(response, TemplateResponse):
                response.render()
            return response
        except DatabaseError:
            message = str(UNAVAILABLE)
            if json:
                response = JsonResponse({"unavailable": True, "message": message}, status=503)
            else:
                page = render_to_string(
                    "admin/newsletter/issue/progress_unavailable.html",
                    {"message": message, "retry": POLL_SECONDS * 2},
                    request=None,
                )
                response = HttpResponse(page, status=503)
            response["Retry-After"] = str(POLL_SECONDS * 2)
            return response

    return guarded


class IssueProgressMixin:
    """IssueAdmin's progress page and its JSON."""

    def progress_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        issue = self._issue_for(request, issue_id)  # type: ignore[attr-defined]
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "opts": self.opts,  # type: ignore[attr-defined]
            "original": issue,
            "title": _("Progress: %(subject)s") % {"subject": issue.subject},
            "issue": issue,
            "figures": progress_figures(issue),
            "json_url": reverse("admin:newsletter_issue_progress_json", args=[issue.pk]),
            "poll_seconds": POLL_SECONDS,
            "tracking_on": settings.NEWSLETTER_TRACKING,
            "can_send": request.user.has_perm("newsletter.send_issue"),
        }
        return TemplateResponse(request, "admin/newsletter/issue/progress.html", context)

    def progress_json_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        issue = self._issue_for(request, issue_id)  # type: ignore[attr-defined]
        return JsonResponse(progress_figures(issue))
