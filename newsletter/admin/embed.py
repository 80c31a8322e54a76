"""The admin's embed tools: the embed code for a page of another site
(newsletter.embed), ready to copy, for editors as much as for publishers; and
subscribers counted by signup source, for whoever may see subscribers."""

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
        help_text="The form's labels, its messages and the language readers who sign up "
        "there get Advances in. “Follow the page” keeps the labels in English and takes "
        "the messages and the reader's language from the page.",
    )
    page = forms.URLField(
        required=False,
        max_length=2000,
        assume_scheme="https",
        label="Page address (optional)",
        help_text="e.g. https://www.example.org/second-opinion/: where Advances' thank-you "
        "page links back to when the reader's browser runs no script.",
    )

    def clean_source(self) -> str:
        try:
            return embed.clean_source(self.cleaned_data["source"])
        except embed.InvalidSource:
            raise forms.ValidationError(
                "Use lower-case letters, digits, “-” or “_” only.", code="invalid_source"
            ) from None

    def clean_page(self) -> str:
        page = self.cleaned_data["page"]
        if page and not embed.is_allowed_origin(page):
            raise forms.ValidationError(
                "This page's site (%(origin)s) is not in NEWSLETTER_EMBED_ORIGINS, so the "
                "form would sign nobody up there: ask an operator to add it first.",
                code="origin_not_allowed",
                params={"origin": embed.normalize_origin(page) or page},
            )
        return page


def embed_code_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    # Any staff member may get the code (admin_view has checked they are staff): it
    # holds no secret, and editors, who never see subscribers, are the ones who place it.
    form = EmbedCodeForm(request.GET or None)
    code = ""
    if form.is_valid():
        code = embed.snippet(
            source=form.cleaned_data["source"],
            language=form.cleaned_data["language"],
            page=form.cleaned_data["page"],
        )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Embed the signup on another site",
        "form": form,
        "code": code,
        "code_bytes": len(code.encode()),
        "origins": sorted(embed.allowed_origins()),
        "advances_origin": embed.advances_origin(),
    }
    return TemplateResponse(request, "admin/newsletter/embed_code.html", context)


class TopicEmbedMixin(admin.ModelAdmin):
    """The embed code lives beside the topics its checkboxes offer: the one list
    editors see among the list's settings."""

    change_list_template = "admin/newsletter/topic/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view(lambda request: embed_code_view(self, request))
        return [path("embed-code/", view, name="newsletter_embed_code"), *super().get_urls()]


class SubscriberEmbedMixin(admin.ModelAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view(self.by_source_view)
        own = [path("by-source/", view, name="newsletter_subscriber_by_source")]
        return own + super().get_urls()

    def by_source_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Subscribers by source",
            "rows": embed.count_by_source(),
        }
        return TemplateResponse(request, "admin/newsletter/subscriber/by_source.html", context)
