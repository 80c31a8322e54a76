"""The clinical reviewers' admin: a queue of issues (and series steps) awaiting
approval, each with its preview, reading level and what changed since the last review;
Approve or Request changes with a comment. And an issue's history as CSV for audits.
The rules are in newsletter/approval.py."""

import csv

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from newsletter import approval, composing, series
from newsletter.errors import NewsletterError
from newsletter.models import Issue, IssueForReview, IssueReview


def cell(value: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula: keep it text.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") else value


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=IssueReview.Decision.choices)
    comment = forms.CharField(
        label=gettext_lazy("Comment for the author"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        max_length=5000,
    )
    seen = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def clean(self):
        data = super().clean() or {}
        if (
            data.get("decision") == approval.Decision.CHANGES_REQUESTED
            and not data.get("comment", "").strip()
        ):
            raise forms.ValidationError(_("Say what needs to change."), code="comment_required")
        return data


@admin.register(IssueForReview)
class ReviewQueueAdmin(admin.ModelAdmin):
    list_display = ["subject", "kind", "status", "approval", "updated_at"]
    list_filter = ["kind", "status"]
    search_fields = ["subject"]

    def get_queryset(self, request):
        return approval.awaiting_review().filter(pk__in=super().get_queryset(request))

    @admin.display(description=gettext_lazy("approval"))
    def approval(self, issue: Issue) -> str:
        return approval.approval_state(issue).explanation()

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("newsletter.approve_issue")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("newsletter.approve_issue") or request.user.has_perm(
            "newsletter.view_issue"
        )

    def get_urls(self):
        return [
            path(
                "<int:issue_id>/history.csv",
                self.admin_site.admin_view(self.history_csv_view),
                name="newsletter_issueforreview_history_csv",
            ),
            *super().get_urls(),
        ]

    # The email is shown in <iframe sandbox srcdoc> as on the issue's preview page.
    @method_decorator(csp_update({"style-src": [UNSAFE_INLINE], "img-src": ["https:"]}))
    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not object_id.isdigit():
            return redirect(reverse("admin:newsletter_issueforreview_changelist"))
        issue = get_object_or_404(Issue, pk=object_id)
        if not self.has_view_permission(request, issue):
            raise PermissionDenied
        form = ReviewForm(request.POST or None, initial={"seen": approval.fingerprint(issue)})
        if request.method == "POST":
            if not self.has_change_permission(request, issue):
                raise PermissionDenied
            if form.is_valid():
                try:
                    approval.review_issue(
                        issue_id=issue.pk,
                        reviewer=request.user,
                        decision=form.cleaned_data["decision"],
                        comment=form.cleaned_data["comment"],
                        seen=form.cleaned_data["seen"],
                    )
                except NewsletterError as error:
                    messages.error(request, str(error))
                    return redirect(request.path)
                if issue.kind == Issue.Kind.SERIES_STEP:
                    # Open (or keep holding) the step now rather than at the next run.
                    series.open_step(step_id=issue.series_step.pk)
                messages.success(request, _("Your review is recorded."))
                return redirect(reverse("admin:newsletter_issueforreview_changelist"))
        rendered = composing.render_issue(issue)
        example = rendered.personalise(
            composing.preview_values(first_name=getattr(request.user, "first_name", ""))
        )
        state = approval.approval_state(issue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": issue,
            "title": _("Review: %(subject)s") % {"subject": issue.subject},
            "issue": issue,
            "rendered": example,
            "word_count": composing.word_count(example),
            "reading_grade": composing.reading_grade_of_text(example.text),
            "grade_target": composing.READING_GRADE_TARGET,
            "piece_grades": [
                (piece.title, composing.reading_grade(piece.body)) for piece in issue.pieces.all()
            ],
            "approval_state": state,
            "approval_explanation": state.explanation(),
            "can_approve": approval.can_approve(issue, request.user),
            "diff": approval.diff_since_last_review(issue, request.user),
            "last_seen": approval.last_seen_review(issue, request.user),
            "review_form": form,
            "issue_history": approval.history(issue),
        }
        return TemplateResponse(request, "admin/newsletter/issue/review.html", context)

    def history_csv_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        issue = get_object_or_404(Issue, pk=issue_id)
        if not self.has_view_permission(request, issue):
            raise PermissionDenied
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="issue-{issue.pk}-history.csv"'
        writer = csv.writer(response)
        writer.writerow(["issue", "when", "what", "who", "comment"])
        for entry in approval.history(issue):
            writer.writerow(
                [
                    issue.slug,
                    timezone.localtime(entry.when).isoformat(),
                    entry.what,
                    cell(entry.who),
                    cell(entry.comment),
                ]
            )
        return response
