"""The subscriber admin's embed tools: subscribers counted by signup source, and the
embed code for a page of another site (newsletter.embed), ready to copy."""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from newsletter import embed


class EmbedCodeForm(forms.Form):
    source = forms.CharField(
        max_length=100,
        label="Page name",
        help_text="Recorded on every reader who signs up there, e.g. “second-opinion-page”. "
        "Lower-case letters, digits, “-” and “_”.",
    )
    language = forms.ChoiceField(
        required=False,
        choices=[("", "Follow the page's <html lang>"), *settings.LANGUAGES],
        label="Language",
    )

    def clean_source(self) -> str:
        try:
            return embed.clean_source(self.cleaned_data["source"])
        except embed.InvalidSource:
            raise forms.ValidationError(
                "Use lower-case letters, digits, “-” or “_” only.", code="invalid_source"
            ) from None


class SubscriberEmbedMixin(admin.ModelAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view
        own = [
            path("by-source/", view(self.by_source_view), name="newsletter_subscriber_by_source"),
            path("embed-code/", view(self.embed_code_view), name="newsletter_subscriber_embed"),
        ]
        return own + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: object) -> dict[str, object]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}

    def by_source_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = self._context(request, "Subscribers by source", rows=embed.count_by_source())
        return TemplateResponse(request, "admin/newsletter/subscriber/by_source.html", context)

    def embed_code_view(self, request: HttpRequest) -> HttpResponse:
        # Any staff member who may see subscribers may get the code: it holds no secret.
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = EmbedCodeForm(request.GET or None)
        code = ""
        if form.is_valid():
            code = embed.snippet(
                source=form.cleaned_data["source"], language=form.cleaned_data["language"]
            )
        context = self._context(
            request,
            "Embed the signup on another site",
            form=form,
            code=code,
            origins=sorted(embed.allowed_origins()),
            advances_origin=embed.advances_origin(),
        )
        return TemplateResponse(request, "admin/newsletter/subscriber/embed_code.html", context)
