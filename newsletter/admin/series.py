"""The editors' admin for welcome series: the series, its steps (an education piece or
a short message, a delay in days), and per step its approval and how many readers are
waiting for it, got it, were skipped or failed. The rules are in newsletter/series.py;
steps are approved from the Review queue like issues."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from newsletter import approval, sending, series
from newsletter.models import Issue, SeriesStep, WelcomeSeries


class SeriesStepForm(forms.ModelForm):
    class Meta:
        model = SeriesStep
        fields = ["delay_days", "position", "subject", "message", "piece"]
        widgets = {"message": forms.Textarea(attrs={"rows": 3, "cols": 60})}

    def clean_piece(self):
        piece = self.cleaned_data["piece"]
        if piece is not None and "piece" in self.changed_data and approval.review_overdue(piece):
            raise forms.ValidationError(
                _(
                    "The clinical review of “%(title)s” was due on %(due)s: renew the "
                    "review before adding it to an issue."
                ),
                code="review_overdue",
                params={"title": piece.title, "due": f"{piece.review_due:%Y-%m-%d}"},
            )
        return piece

    def clean(self):
        data = super().clean() or {}
        if not (data.get("message") or "").strip() and data.get("piece") is None:
            raise forms.ValidationError(
                _("Give the step an education piece, a short message, or both."),
                code="step_empty",
            )
        return data


class SeriesStepInline(admin.StackedInline):
    model = SeriesStep
    form = SeriesStepForm
    extra = 1
    autocomplete_fields = ["piece"]
    readonly_fields = ["approval"]
    fields = ["delay_days", "position", "subject", "message", "piece", "approval"]

    @admin.display(description=gettext_lazy("clinical approval"))
    def approval(self, step: SeriesStep) -> str:
        if not step.pk:
            return _("A clinical reviewer approves the step from the Review queue once saved.")
        explanation = approval.approval_state(step.issue).explanation()
        # The author reads the reviewers' comments here, as on an issue's page.
        comments = [
            _("%(decision)s by %(name)s on %(when)s: %(comment)s")
            % {
                "decision": review.get_decision_display(),
                "name": approval.reviewer_name(review),
                "when": f"{timezone.localtime(review.created_at):%Y-%m-%d %H:%M}",
                "comment": review.comment,
            }
            for review in step.issue.reviews.exclude(comment="").select_related("reviewer")
        ]
        return " — ".join([explanation, *comments])


@admin.register(WelcomeSeries)
class WelcomeSeriesAdmin(admin.ModelAdmin):
    change_form_template = "admin/newsletter/welcomeseries/change_form.html"
    list_display = ["name", "topic", "language", "is_active", "step_count"]
    list_filter = ["is_active", "language", "topic"]
    inlines = [SeriesStepInline]

    @admin.display(description=gettext_lazy("steps"))
    def step_count(self, obj: WelcomeSeries) -> int:
        return obj.steps.count()

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            series.create_series(series=obj)

    def save_formset(self, request, form, formset, change):
        if formset.model is not SeriesStep:
            return super().save_formset(request, form, formset, change)
        steps = formset.save(commit=False)
        for step in formset.deleted_objects:
            series.remove_step(step=step)
        for step in steps:
            series.save_step(step=step, editor=request.user)
        formset.save_m2m()

    def delete_model(self, request, obj):
        for step in obj.steps.all():
            series.remove_step(step=step)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = WelcomeSeries.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if obj is not None:
            extra_context = {
                **(extra_context or {}),
                "step_progress": series.series_progress(obj),
                "can_send": request.user.has_perm("newsletter.send_issue"),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "step/<int:step_id>/resume/",
                self.admin_site.admin_view(self.resume_step_view),
                name="newsletter_welcomeseries_resume_step",
            ),
            *super().get_urls(),
        ]

    def resume_step_view(self, request, step_id: int):
        """A step paused by ESP errors carries on (publishers only; POST)."""
        step = get_object_or_404(SeriesStep, pk=step_id)
        back = reverse("admin:newsletter_welcomeseries_change", args=[step.series_id])
        if request.method != "POST" or not request.user.has_perm("newsletter.send_issue"):
            return redirect(back)
        if step.issue.status == Issue.Status.PAUSED:
            sending.resume_issue(issue_id=step.issue_id)
            series.open_step(step_id=step.pk)
            messages.success(request, _("The step carries on."))
        return redirect(back)
