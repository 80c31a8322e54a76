"""API keys for the center's systems: made here (the key shown once), revoked here,
never edited. Thin over newsletter.api_keys."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse

from newsletter import api_keys
from newsletter.models import ApiKey


class ApiKeyCreationForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "scope"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name"]
    actions = ["revoke_selected"]
    readonly_fields = ["name", "scope", "prefix", "created_at", "created_by", "last_used_at"]
    readonly_fields += ["revoked_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def has_change_permission(self, request, obj=None):
        # Shown, never edited: a key's name is the source on the readers it added.
        return False

    def has_delete_permission(self, request, obj=None):
        # Revoked, not deleted: the name stays behind the consent log's entries.
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        if request.method == "POST" and self.has_add_permission(request):
            form = ApiKeyCreationForm(request.POST)
            if form.is_valid():
                api_key, secret = api_keys.create_api_key(
                    name=form.cleaned_data["name"],
                    scope=form.cleaned_data["scope"],
                    created_by=request.user,
                )
                self.log_addition(request, api_key, [{"added": {}}])
                context = {
                    **self.admin_site.each_context(request),
                    "opts": self.opts,
                    "title": f"API key “{api_key.name}” created",
                    "api_key": api_key,
                    "secret": secret,
                    "site_url": settings.SITE_URL.rstrip("/"),
                }
                response = TemplateResponse(
                    request, "admin/newsletter/apikey/created.html", context
                )
                return response
        return super().add_view(request, form_url, extra_context)

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]):
        revoked = sum(api_keys.revoke_api_key(api_key=api_key) for api_key in queryset)
        messages.success(request, f"Revoked {revoked} key(s). They stop working at once.")
        return HttpResponseRedirect(request.get_full_path())

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("newsletter.add_apikey")
