"""The subscriber admin's data-rights tools: export one subscriber's data, erase, CSV
import and export. Publishers only (their own permissions, granted in migration 0007);
Editors never see subscribers at all. Each view is a thin caller of privacy.py or
importing.py."""

import io
from contextlib import suppress

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from newsletter import importing, privacy
from newsletter.forms import SubscriberImportForm
from newsletter.models import Subscriber


def staff_source(request: HttpRequest, what: str) -> str:
    return f"{what} by {getattr(request.user, 'username', 'staff')}"


class SubscriberDataRightsMixin(admin.ModelAdmin):
    change_form_template = "admin/newsletter/subscriber/change_form.html"
    change_list_template = "admin/newsletter/subscriber/change_list.html"
    actions = ["erase_selected"]

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("newsletter.erase_subscriber")

    def _require(self, request: HttpRequest, codename: str) -> None:
        if not request.user.has_perm(f"newsletter.{codename}"):
            raise PermissionDenied

    def get_urls(self):
        view = self.admin_site.admin_view
        own = [
            path("import/", view(self.import_view), name="newsletter_subscriber_import"),
            path("export.csv", view(self.export_csv_view), name="newsletter_subscriber_export_csv"),
            path(
                "<int:subscriber_id>/export-data/",
                view(self.export_data_view),
                name="newsletter_subscriber_export_data",
            ),
            path(
                "<int:subscriber_id>/erase/",
                view(self.erase_view),
                name="newsletter_subscriber_erase",
            ),
        ]
        return own + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: object) -> dict[str, object]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}

    def export_data_view(self, request: HttpRequest, subscriber_id: int) -> HttpResponse:
        """One subscriber's data as a JSON download (a right-of-access request)."""
        self._require(request, "export_subscribers")
        subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
        response = HttpResponse(
            privacy.subscriber_export_json(subscriber=subscriber),
            content_type="application/json; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="advances-subscriber-{subscriber.pk}.json"'
        )
        return response

    def erase_view(self, request: HttpRequest, subscriber_id: int) -> HttpResponse:
        self._require(request, "erase_subscriber")
        subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
        if request.method == "POST":
            # Erased by someone else a moment ago: the outcome asked for, all the same.
            with suppress(privacy.NothingToErase):
                privacy.erase_subscriber(
                    subscriber_id=subscriber.pk, source=staff_source(request, "admin")
                )
            messages.success(request, "The subscriber's personal data is erased.")
            return redirect("admin:newsletter_subscriber_changelist")
        return TemplateResponse(
            request,
            "admin/newsletter/subscriber/erase_confirm.html",
            self._context(request, "Erase personal data", subscribers=[subscriber]),
        )

    @admin.action(description="Erase selected subscribers' personal data…", permissions=["erase"])
    def erase_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]):
        if request.POST.get("confirmed") == "yes":
            erased = 0
            for subscriber_id in queryset.values_list("pk", flat=True):
                with suppress(privacy.NothingToErase):
                    privacy.erase_subscriber(
                        subscriber_id=subscriber_id, source=staff_source(request, "admin")
                    )
                    erased += 1
            messages.success(request, f"Erased the personal data of {erased} subscriber(s).")
            return None
        return TemplateResponse(
            request,
            "admin/newsletter/subscriber/erase_confirm.html",
            self._context(
                request,
                "Erase personal data",
                subscribers=list(queryset),
                action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
            ),
        )

    def import_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request, "import_subscribers")
        report = None
        form = SubscriberImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > importing.MAX_BYTES:
                report = importing.ImportReport()
                report.error(0, "too_large", "The file is larger than 5 MB; split it.")
            else:
                try:
                    report = importing.import_subscribers(
                        data=upload.read(),
                        source=f"{form.cleaned_data['source']} ({staff_source(request, 'admin')})",
                        file_name=upload.name,
                    )
                except importing.ImportConflict:
                    messages.error(
                        request,
                        "The list changed during the import; nothing was imported. Try again.",
                    )
        return TemplateResponse(
            request,
            "admin/newsletter/subscriber/import.html",
            self._context(request, "Import subscribers from CSV", form=form, report=report),
            status=400 if report is not None and not report.imported else 200,
        )

    def export_csv_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request, "export_subscribers")
        out = io.StringIO()
        importing.export_active_subscribers(out=out)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="advances-active-{timezone.localdate():%Y-%m-%d}.csv"'
        )
        return response
