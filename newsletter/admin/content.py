"""The admin for editors and publishers: education pieces and issues, with preview,
test sends, sending and delivery progress."""

from datetime import timedelta

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from newsletter import approval, charts, composing, review_due, sending, tasks, tracking
from newsletter.forms import (
    EducationPieceAdminForm,
    IssueAdminForm,
    IssuePieceForm,
    ScheduleForm,
    TestSendForm,
)
from newsletter.models import (
    EducationPiece,
    Issue,
    IssuePiece,
)


def approval_context(issue: Issue) -> dict[str, object]:
    state = approval.approval_state(issue)
    return {
        "approval_state": state,
        "approval_explanation": state.explanation(),
        "approvers": approval.possible_approvers(issue),
        "issue_history": approval.history(issue),
        "review_comments": issue.reviews.exclude(comment="").select_related("reviewer"),
    }


def approval_refusal(issue: Issue, error: approval.ApprovalMissing) -> str:
    """What is missing, and who can approve."""
    approvers = approval.possible_approvers(issue)
    who = (
        _("Clinical reviewers who can approve it: %(names)s.") % {"names": ", ".join(approvers)}
        if approvers
        else _(
            "Nobody in Clinical reviewers can approve it yet (its author and last editor may not)."
        )
    )
    return _("Not sent: %(why)s %(who)s") % {"why": str(error), "who": who}


def staff_first_name(request: HttpRequest) -> str:
    return getattr(request.user, "first_name", "")


class ReviewDueFilter(admin.SimpleListFilter):
    title = gettext_lazy("clinical review")
    parameter_name = "review"

    def lookups(self, request, model_admin):
        days = settings.NEWSLETTER_REVIEW_NOTICE_DAYS
        return [
            ("overdue", _("Overdue")),
            ("due-soon", _("Due within %(days)d days") % {"days": days}),
        ]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        if self.value() == "overdue":
            return queryset.filter(review_due__lt=today)
        if self.value() == "due-soon":
            horizon = today + timedelta(days=settings.NEWSLETTER_REVIEW_NOTICE_DAYS)
            return queryset.filter(review_due__gte=today, review_due__lte=horizon)
        return queryset


@admin.register(EducationPiece)
class EducationPieceAdmin(admin.ModelAdmin):
    form = EducationPieceAdminForm
    list_display = ["title", "topic", "review_status", "reading_level", "home_position"]
    list_filter = ["topic", ReviewDueFilter]
    search_fields = ["title", "summary", "body"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = ["reading_level", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["title", "slug", "summary", "body", "topic", "home_position"]}),
        ("Call to action", {"fields": ["cta_label", "cta_url"]}),
        ("Clinical review", {"fields": ["reviewed_by", "reviewed_on", "review_due"]}),
        ("Readability", {"fields": ["reading_level", "created_at", "updated_at"]}),
    ]

    actions = ["record_rereview"]

    def save_model(self, request, obj, form, change):
        obj.last_edited_by = request.user  # may not approve an issue containing it
        super().save_model(request, obj, form, change)

    @admin.action(
        description=gettext_lazy("Record a re-review (reviewed today, by me)"),
        permissions=["rereview"],
    )
    def record_rereview(self, request, queryset):
        user = request.user
        name = user.get_full_name() or user.get_username()
        changed = review_due.record_rereview(
            piece_ids=list(queryset.values_list("pk", flat=True)), reviewed_by=name
        )
        messages.success(
            request,
            _("Re-review recorded for %(count)d pieces, by %(name)s; next review due in "
              "%(months)d months.")
            % {"count": changed, "name": name, "months": settings.NEWSLETTER_REVIEW_MONTHS},
        )  # fmt: skip

    def has_rereview_permission(self, request):
        # Re-reviewing is the clinical reviewers' call (DESIGN: who uses it).
        return request.user.has_perm("newsletter.approve_issue")

    @admin.display(description="clinical review")
    def review_status(self, piece: EducationPiece) -> str:
        if not piece.reviewed_by or not piece.reviewed_on:
            return "⚠ Not reviewed"
        if piece.review_due and piece.review_due < timezone.localdate():
            return f"⚠ Review overdue since {piece.review_due:%Y-%m-%d}"
        return f"Reviewed {piece.reviewed_on:%Y-%m-%d} by {piece.reviewed_by}"

    @admin.display(description="reading level")
    def reading_level(self, piece: EducationPiece) -> str:
        grade = composing.reading_grade(piece.body)
        if grade > composing.READING_GRADE_TARGET:
            return f"⚠ Grade {grade} (aim for {composing.READING_GRADE_TARGET} or below)"
        return f"Grade {grade}"


class IssuePieceInline(admin.TabularInline):
    model = IssuePiece
    form = IssuePieceForm
    extra = 1
    fields = ["position", "piece"]
    autocomplete_fields = ["piece"]


@admin.register(Issue)
class IssueAdmin(admin.ModelAdmin):
    form = IssueAdminForm
    change_form_template = "admin/newsletter/issue/change_form.html"
    list_display = ["subject", "status", "scheduled_at", "sent_at", "author"]
    list_filter = ["status", "topics"]
    search_fields = ["subject", "slug"]
    prepopulated_fields = {"slug": ["subject"]}
    filter_horizontal = ["topics"]
    readonly_fields = ["status", "scheduled_at", "sent_at", "author", "created_at", "updated_at"]
    inlines = [IssuePieceInline]

    def save_model(self, request, obj, form, change):
        if obj.author_id is None:
            obj.author = request.user
        obj.last_edited_by = request.user  # may not approve it (approval.py)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Pieces or topics changed without a change to the issue's own fields still
        # change what readers get: mark the issue edited, by this person.
        Issue.objects.filter(pk=form.instance.pk).update(
            last_edited_by=request.user, updated_at=timezone.now()
        )

    def get_queryset(self, request):
        # A welcome-series step's issue is managed from its series.
        return super().get_queryset(request).filter(kind=Issue.Kind.ISSUE)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        issue = Issue.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if issue is not None:
            extra_context = {**(extra_context or {}), **approval_context(issue)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        own = [
            path(
                "<int:issue_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="newsletter_issue_preview",
            ),
            path(
                "<int:issue_id>/test-send/",
                self.admin_site.admin_view(self.test_send_view),
                name="newsletter_issue_test_send",
            ),
            path(
                "<int:issue_id>/send/",
                self.admin_site.admin_view(self.send_view),
                name="newsletter_issue_send",
            ),
            path(
                "<int:issue_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="newsletter_issue_progress",
            ),
            path(
                "<int:issue_id>/progress.json",
                self.admin_site.admin_view(self.progress_json_view),
                name="newsletter_issue_progress_json",
            ),
        ]
        return own + super().get_urls()

    def _issue_for(self, request: HttpRequest, issue_id: int) -> Issue:
        issue = get_object_or_404(Issue, pk=issue_id)
        if not self.has_change_permission(request, issue):
            raise PermissionDenied
        return issue

    # The email is shown in <iframe sandbox srcdoc>, and a srcdoc document inherits this
    # page's Content-Security-Policy: its <style> block, inline styles and remote images
    # must load, here only. The sandbox (no scripts, opaque origin) still confines it.
    @method_decorator(csp_update({"style-src": [UNSAFE_INLINE], "img-src": ["https:"]}))
    def preview_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        issue = self._issue_for(request, issue_id)
        rendered = composing.render_issue(issue)
        example = rendered.personalise(
            composing.preview_values(first_name=staff_first_name(request))
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": issue,
            "title": f"Preview: {issue.subject}",
            "issue": issue,
            "rendered": example,
            "word_count": composing.word_count(example),
            "reading_grade": composing.reading_grade_of_text(example.text),
            "grade_target": composing.READING_GRADE_TARGET,
            "test_form": TestSendForm(initial={"addresses": getattr(request.user, "email", "")}),
        }
        return TemplateResponse(request, "admin/newsletter/issue/preview.html", context)

    def test_send_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        issue = self._issue_for(request, issue_id)
        preview_url = reverse("admin:newsletter_issue_preview", args=[issue.pk])
        if request.method != "POST":
            return redirect(preview_url)
        form = TestSendForm(request.POST)
        if not form.is_valid():
            for error in form.errors.get("addresses", []):
                messages.error(request, str(error))
            return redirect(preview_url)
        addresses = form.cleaned_data["addresses"]
        tasks.send_issue_test.delay(issue.pk, addresses, staff_first_name(request))
        messages.success(request, f"Test sent to {', '.join(addresses)}.")
        return redirect(preview_url)

    # --- Sending: Publishers only ------------------------------------------------------

    def _sendable(self, request: HttpRequest, issue_id: int) -> Issue:
        if not request.user.has_perm("newsletter.send_issue"):
            raise PermissionDenied
        return get_object_or_404(Issue, pk=issue_id)

    def send_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        """Confirm first: who will get it. Then send now, schedule, pause, resume or
        cancel, each a POST."""
        issue = self._sendable(request, issue_id)
        progress_url = reverse("admin:newsletter_issue_progress", args=[issue.pk])
        form = ScheduleForm(request.POST if "schedule" in request.POST else None)
        if request.method == "POST":
            action = request.POST.get("action", "")
            try:
                if action == "send":
                    queued = sending.start_issue(issue_id=issue.pk)
                    messages.success(request, f"Sending to {queued} readers.")
                    return redirect(progress_url)
                if action == "schedule" and form.is_valid():
                    sending.schedule_issue(issue_id=issue.pk, when=form.cleaned_data["when"])
                    messages.success(request, "Scheduled.")
                    return redirect(progress_url)
                if action == "pause":
                    sending.pause_issue(issue_id=issue.pk, reason="Paused by a publisher.")
                    return redirect(progress_url)
                if action == "resume":
                    sending.resume_issue(issue_id=issue.pk)
                    return redirect(progress_url)
                if action == "cancel":
                    sending.cancel_issue(issue_id=issue.pk)
                    return redirect(progress_url)
            except approval.ApprovalMissing as error:
                messages.error(request, approval_refusal(issue, error))
                return redirect(request.path)
            except sending.IssueStateError:
                messages.error(request, f"That is not possible while the issue is {issue.status}.")
                return redirect(progress_url)
        total, per_topic = sending.audience_by_topic(issue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": issue,
            "title": f"Send: {issue.subject}",
            "issue": issue,
            "audience_total": total,
            "audience_per_topic": per_topic,
            "schedule_form": form,
            **approval_context(issue),
        }
        return TemplateResponse(request, "admin/newsletter/issue/send.html", context)

    def progress_json_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        """The progress figures as kept on the issue (counted at most every
        NEWSLETTER_PROGRESS_SECONDS), for scripts and the page's own refresh."""
        issue = self._issue_for(request, issue_id)
        figures = sending.issue_progress(issue)
        return JsonResponse(
            {
                "issue": issue.pk,
                "status": issue.status,
                "counts": figures.counts,
                "total": figures.total,
                "done": figures.done,
                "rate": figures.rate,
                "seconds_left": figures.seconds_left,
                "maybe_duplicates": figures.maybe_duplicates,
                "counted_at": figures.counted_at.isoformat() if figures.counted_at else None,
            }
        )

    def progress_view(self, request: HttpRequest, issue_id: int) -> HttpResponse:
        issue = self._issue_for(request, issue_id)
        outcome = tracking.issue_outcome(issue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": issue,
            "title": f"Progress: {issue.subject}",
            "issue": issue,
            "progress": sending.issue_progress(issue),
            "outcome": outcome,
            "outcome_chart": charts.issue_outcome_chart(outcome),
            "tracking_on": settings.NEWSLETTER_TRACKING,
            "can_send": request.user.has_perm("newsletter.send_issue"),
            "live": issue.status == Issue.Status.SENDING,
        }
        return TemplateResponse(request, "admin/newsletter/issue/progress.html", context)
