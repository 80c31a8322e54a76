"""The admin for editors and publishers: education pieces and issues, with preview,
test sends, sending and delivery progress."""

from datetime import timedelta

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import get_language_info, gettext_lazy
from django.utils.translation import gettext as _

from newsletter import (
    approval,
    composing,
    readability,
    review_due,
    sending,
    start_pages,
    tasks,
    translations,
)
from newsletter.admin.live_preview import LivePreviewMixin
from newsletter.admin.progress import IssueProgressMixin, database_guard
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


def language_name(code: str) -> str:
    """A language's name in the editor's language ("Spanish", "español")."""
    return str(get_language_info(code)["name_translated"])


def partial_action(language: str):
    """The changelist action "Create the <language> issue" for one language."""

    def action(model_admin: "IssueAdmin", request: HttpRequest, queryset) -> None:
        for issue in queryset:
            model_admin.create_issue_in(request, issue, language)

    return action


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


class MissingTranslationFilter(admin.SimpleListFilter):
    """Pieces that have no version in a language yet: the translators' to-do list."""

    title = gettext_lazy("translation")
    parameter_name = "missing"

    def lookups(self, request, model_admin):
        return [
            (code, _("No version in %(language)s") % {"language": name})
            for code, name in settings.LANGUAGES
        ]

    def queryset(self, request, queryset):
        language = self.value()
        if language in dict(settings.LANGUAGES):
            return queryset.filter(pk__in=translations.pieces_missing(language))
        return queryset


class ReadyToSendFilter(admin.SimpleListFilter):
    """Drafts with a valid clinical approval (the publishers' start page counts them)."""

    title = gettext_lazy("ready to send")
    parameter_name = "ready"

    def lookups(self, request, model_admin):
        return [("yes", _("Approved drafts"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(pk__in=start_pages.ready_to_send())
        return queryset


@admin.register(EducationPiece)
class EducationPieceAdmin(LivePreviewMixin, admin.ModelAdmin):
    form = EducationPieceAdminForm
    change_form_template = "admin/newsletter/educationpiece/change_form.html"
    list_display = [
        "title", "language", "translation_status", "topic", "review_status", "reading_level",
        "home_position",
    ]  # fmt: skip
    list_filter = ["language", MissingTranslationFilter, "topic", ReviewDueFilter]
    search_fields = ["title", "summary", "body"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = ["reading_level", "created_at", "updated_at"]
    fieldsets = [
        (
            None,
            {"fields": ["title", "slug", "summary", "body", "topic", "home_position"]},
        ),
        (
            gettext_lazy("Language"),
            {"fields": ["language", "translation_of", "needs_translation_review"]},
        ),
        (gettext_lazy("Call to action"), {"fields": ["cta_label", "cta_url"]}),
        (
            gettext_lazy("Clinical review"),
            {"fields": ["reviewed_by", "reviewed_on", "review_due"]},
        ),
        (gettext_lazy("Readability"), {"fields": ["reading_level", "created_at", "updated_at"]}),
    ]

    actions = ["record_rereview"]

    def get_urls(self):
        return self.live_preview_urls() + super().get_urls()

    def save_model(self, request, obj, form, change):
        obj.last_edited_by = request.user  # may not approve an issue containing it
        super().save_model(request, obj, form, change)
        other = form.cleaned_data.get("translation_of")
        if other is not None:
            translations.link_translation(piece=other, translation=obj)
        elif "translation_of" in form.changed_data:
            translations.unlink_translation(piece=obj)

    @admin.display(description=gettext_lazy("translations"))
    def translation_status(self, piece: EducationPiece) -> str:
        have = translations.translations_of(piece)
        marks = [
            f"{code} ✓" if code in have else f"⚠ {_('no %(code)s') % {'code': code}}"
            for code, _name in settings.LANGUAGES
            if code != piece.language
        ]
        if piece.needs_translation_review:
            marks.append(_("⚠ translation not yet reviewed"))
        return ", ".join(marks)

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

    @admin.display(description=gettext_lazy("reading level"))
    def reading_level(self, piece: EducationPiece) -> str:
        # Measured as the piece's language is measured, against that language's target.
        return str(composing.piece_reading_level(piece.body, piece.language))


class IssuePieceInline(admin.TabularInline):
    model = IssuePiece
    form = IssuePieceForm
    extra = 1
    fields = ["position", "piece"]
    autocomplete_fields = ["piece"]


@admin.register(Issue)
class IssueAdmin(LivePreviewMixin, IssueProgressMixin, admin.ModelAdmin):
    form = IssueAdminForm
    change_form_template = "admin/newsletter/issue/change_form.html"
    list_display = ["subject", "language", "status", "scheduled_at", "sent_at", "author"]
    list_filter = ["status", ReadyToSendFilter, "language", "topics", "author"]
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
                database_guard(self.admin_site.admin_view(self.progress_view), json=False),
                name="newsletter_issue_progress",
            ),
            path(
                "<int:issue_id>/translate/<str:language>/",
                self.admin_site.admin_view(self.translate_view),
                name="newsletter_issue_translate",
            ),
            path(
                "<int:issue_id>/progress.json",
                database_guard(self.admin_site.admin_view(self.progress_json_view), json=True),
                name="newsletter_issue_progress_json",
            ),
        ]
        return own + self.live_preview_urls() + super().get_urls()

    # --- Languages: an issue's copy in another language -------------------------------

    def get_actions(self, request):
        # One "Create the <language> issue" action per language.
        actions = super().get_actions(request)
        if not self.has_add_permission(request):
            return actions
        for code, _name in settings.LANGUAGES:
            label = _("Create the %(language)s issue") % {"language": language_name(code)}
            actions[f"create_issue_{code}"] = (
                partial_action(code),
                f"create_issue_{code}",
                label,
            )
        return actions

    def create_issue_in(self, request: HttpRequest, issue: Issue, language: str) -> Issue | None:
        if issue.language == language:
            messages.warning(
                request,
                _("“%(subject)s” is already in %(language)s.")
                % {"subject": issue.subject, "language": language_name(language)},
            )
            return None
        made = translations.create_translated_issue(
            issue_id=issue.pk, language=language, author=request.user
        )
        messages.success(
            request,
            _(
                "Created the %(language)s issue “%(subject)s”: translate its subject, "
                "preheader and introduction."
            )
            % {"language": language_name(language), "subject": made.issue.subject},
        )
        if made.untranslated:
            messages.warning(
                request,
                _("Left out, with no %(language)s version yet: %(titles)s.")
                % {
                    "language": language_name(language),
                    "titles": ", ".join(f"“{piece.title}”" for piece in made.untranslated),
                },
            )
        return made.issue

    def translate_view(self, request: HttpRequest, issue_id: int, language: str) -> HttpResponse:
        issue = self._issue_for(request, issue_id)
        if request.method != "POST" or not self.has_add_permission(request):
            raise PermissionDenied
        if language not in dict(settings.LANGUAGES):
            messages.error(request, _("Unknown language."))
            return redirect("admin:newsletter_issue_change", issue.pk)
        made = self.create_issue_in(request, issue, language)
        return redirect("admin:newsletter_issue_change", (made or issue).pk)

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
            "reading_level": readability.reading_level(example.text, issue.language),
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
        per_language = translations.audience_by_language(issue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": issue,
            "title": f"Send: {issue.subject}",
            "issue": issue,
            "audience_total": total,
            "audience_per_topic": per_topic,
            "audience_per_language": per_language,
            "schedule_form": form,
            **approval_context(issue),
        }
        return TemplateResponse(request, "admin/newsletter/issue/send.html", context)
