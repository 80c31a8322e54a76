"""Which language a page or an email is in, and the same page in the others.

Readers' pages follow their address: English where they always were (`/`,
`/newsletter/...`), every other language under its prefix (`/es/...`). Emails follow the
reader's (or the issue's) language, whatever page or worker sends them. Staff pages
(the admin) have one address for all and follow the editor's browser.
"""

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.locale import LocaleMiddleware
from django.urls import reverse, translate_url
from django.utils import translation

# Unprefixed addresses whose pages follow the browser's language, not the default.
STAFF_PREFIXES = ("/admin/",)


def codes() -> list[str]:
    return [code for code, _ in settings.LANGUAGES]


def supported(code: str | None) -> str:
    """`code` if it is one of the site's languages (es-MX counts as es), else the
    default."""
    if code:
        base = code.lower().split("-")[0]
        if base in codes():
            return base
    return settings.LANGUAGE_CODE


def name_of(code: str) -> str:
    return dict(settings.LANGUAGES).get(code, code)


class LanguageMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware (the prefix decides a reader's page), except that the
    admin, which has no prefix, speaks the editor's browser language (Django's own
    translations cover it)."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        if request.path_info.startswith(STAFF_PREFIXES):
            language = translation.get_language_from_request(request)
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        response = super().process_response(request, response)
        if request.path_info.startswith(STAFF_PREFIXES):
            response.headers["Content-Language"] = request.LANGUAGE_CODE
        return response


@dataclass(frozen=True)
class LanguageLink:
    code: str
    name: str
    path: str
    current: bool
    # The same page in that language (an hreflang alternate), not just a way there.
    alternate: bool = True


def same_page_in_each_language(request: HttpRequest) -> list[LanguageLink]:
    """This page's address in every language (the switch, the hreflang alternates). A
    page that has none (an unknown address) points to each language's home page; a view
    may name others as `request.language_links`."""
    chosen = getattr(request, "language_links", None)
    if chosen is not None:
        return chosen
    current = translation.get_language()
    links = []
    for code, name in settings.LANGUAGES:
        path = translate_url(request.path, code)
        alternate = True
        if path == request.path and code != current:
            with translation.override(code):
                path = reverse("home")
            alternate = False
        links.append(LanguageLink(code, name, path, current=code == current, alternate=alternate))
    return links


def archive_in_each_language() -> list[LanguageLink]:
    """Each language's archive: where the switch leads from a page that exists in one
    language only (an issue)."""
    current = translation.get_language()
    links = []
    for code, name in settings.LANGUAGES:
        with translation.override(code):
            path = reverse("newsletter:archive")
        links.append(LanguageLink(code, name, path, current=code == current, alternate=False))
    return links
