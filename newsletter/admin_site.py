"""Advances' own admin site: its name in the header and title, and a start page per
role (newsletter/start_pages.py) above the list of models, every count a link to the
filtered list it counts. Outside the newsletter.admin package: that package registers
models on this site, so the site must exist before it is imported."""

from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy

from newsletter import start_pages


class AdvancesAdminSite(admin.AdminSite):
    site_header = gettext_lazy("Advances")
    site_title = gettext_lazy("Advances")
    index_title = gettext_lazy("Start")
    index_template = "admin/advances_index.html"

    def changelist_url(self, request: HttpRequest, figure: start_pages.Figure) -> str:
        """The filtered list behind a figure, or "" when this person may not open it."""
        model_admin = next(
            (
                model_admin
                for model, model_admin in self._registry.items()
                if model._meta.app_label == "newsletter" and model._meta.model_name == figure.model
            ),
            None,
        )
        if model_admin is None or not model_admin.has_view_permission(request):
            return ""
        try:
            url = reverse(f"{self.name}:newsletter_{figure.model}_changelist")
        except NoReverseMatch:
            return ""
        return f"{url}?{urlencode(figure.query)}" if figure.query else url

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        sections = start_pages.start_page(request.user)

        def changelist_url(figure: start_pages.Figure) -> str:
            return self.changelist_url(request, figure)

        linked = [
            {
                "section": section,
                "figures": [(figure, changelist_url(figure)) for figure in section.figures],
                "issues": [
                    {
                        "line": line,
                        "figures": [(figure, changelist_url(figure)) for figure in line.figures],
                    }
                    for line in section.issues
                ],
            }
            for section in sections
        ]
        return super().index(request, {**(extra_context or {}), "start_sections": linked})
