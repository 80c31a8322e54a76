"""Live preview while editing an issue or an education piece: the change form posts
what the editor has typed (newsletter/static/newsletter/live_preview.js), and gets back
a server-rendered partial (the reading-level figures, the HTML at phone and desktop
width, the text part), rendered by the same composing code as the send.

The email itself is served as its own document for the partial's iframes, from the
cache, to the editor who rendered it: its <style> block needs 'unsafe-inline' styles,
which the change form's own policy keeps refusing. The iframes are sandboxed (no
script, an opaque origin)."""

import secrets

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace, csp_update
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from newsletter import composing
from newsletter.models import EducationPiece, Issue

CACHE_SECONDS = 15 * 60
MAX_PIECES = 50
CTA_URL = URLValidator(schemes=["http", "https", "mailto", "tel"])


def _text(request: HttpRequest, name: str, limit: int) -> str:
    return request.POST.get(name, "")[:limit]


def issue_from_form(request: HttpRequest) -> tuple[Issue, list[EducationPiece]]:
    """The issue as typed (not saved) and its pieces in their form order; a piece marked
    for deletion or left blank is left out."""
    issue = Issue(
        subject=_text(request, "subject", 200),
        slug=_text(request, "slug", 200),
        preheader=_text(request, "preheader", 200),
        intro=_text(request, "intro", 50_000),
    )
    chosen: list[tuple[int, int, int]] = []
    for n in range(MAX_PIECES):
        prefix = f"issue_pieces-{n}-"
        piece_id = request.POST.get(prefix + "piece", "")
        if not piece_id.isdigit() or request.POST.get(prefix + "DELETE"):
            continue
        position = request.POST.get(prefix + "position", "")
        chosen.append((int(position) if position.isdigit() else 10_000, n, int(piece_id)))
    by_id = EducationPiece.objects.in_bulk([piece_id for *_, piece_id in chosen])
    pieces = [by_id[piece_id] for *_, piece_id in sorted(chosen) if piece_id in by_id]
    return issue, pieces


def piece_from_form(request: HttpRequest) -> EducationPiece:
    cta_url = _text(request, "cta_url", 200).strip()
    try:
        CTA_URL(cta_url)
    except ValidationError:
        cta_url = ""  # the form says why on save; the preview just leaves the button out
    return EducationPiece(
        title=_text(request, "title", 200),
        summary=_text(request, "summary", 500),
        body=_text(request, "body", 100_000),
        cta_label=_text(request, "cta_label", 100),
        cta_url=cta_url,
    )


def _cache_key(user_id: object, token: str) -> str:
    return f"live-preview:{user_id}:{token}"


class LivePreviewMixin:
    """Adds `live-preview/` (POST: the partial) and `live-preview/<token>/` (the email
    document) to a ModelAdmin of Issue or EducationPiece."""

    def live_preview_urls(self) -> list:
        name = self.opts.model_name  # type: ignore[attr-defined]
        site = self.admin_site  # type: ignore[attr-defined]
        return [
            path(
                "live-preview/",
                site.admin_view(self.live_preview_view),
                name=f"newsletter_{name}_live_preview",
            ),
            path(
                "live-preview/<str:token>/",
                site.admin_view(self.live_preview_document),
                name=f"newsletter_{name}_live_preview_document",
            ),
        ]

    def _may_edit(self, request: HttpRequest) -> bool:
        return self.has_change_permission(request) or self.has_add_permission(request)  # type: ignore[attr-defined]

    @method_decorator(require_POST)
    def live_preview_view(self, request: HttpRequest) -> HttpResponse:
        if not self._may_edit(request):
            raise PermissionDenied
        if self.opts.model is Issue:  # type: ignore[attr-defined]
            issue, pieces = issue_from_form(request)
            rendered = composing.render_draft(issue=issue, pieces=pieces)
            grade_of = rendered.text
        else:
            piece = piece_from_form(request)
            rendered = composing.render_piece_draft(piece)
            grade_of = composing.html_to_text(composing.markdown_to_html(piece.body))
        example = rendered.personalise(
            composing.preview_values(first_name=getattr(request.user, "first_name", ""))
        )
        token = secrets.token_urlsafe(16)
        cache.set(_cache_key(request.user.pk, token), example.html, CACHE_SECONDS)
        document_url = reverse(
            f"admin:newsletter_{self.opts.model_name}_live_preview_document",  # type: ignore[attr-defined]
            args=[token],
        )
        markdown = request.POST.get("body" if self.opts.model is EducationPiece else "intro", "")  # type: ignore[attr-defined]
        context = {
            "rendered": example,
            "document_url": document_url,
            "word_count": composing.word_count(example),
            "reading_grade": composing.reading_grade_of_text(grade_of),
            "grade_target": composing.READING_GRADE_TARGET,
            "images_without_alt": composing.images_without_alt(markdown),
            "is_piece": self.opts.model is EducationPiece,  # type: ignore[attr-defined]
        }
        return TemplateResponse(request, "admin/newsletter/live_preview.html", context)

    @method_decorator(xframe_options_sameorigin)
    @method_decorator(csp_replace({"frame-ancestors": [SELF]}))
    @method_decorator(csp_update({"style-src": [UNSAFE_INLINE], "img-src": ["https:"]}))
    def live_preview_document(self, request: HttpRequest, token: str) -> HttpResponse:
        if not self._may_edit(request):
            raise PermissionDenied
        html = cache.get(_cache_key(request.user.pk, token))
        if html is None:
            raise Http404("This preview has expired; type in the form to render it again.")
        return HttpResponse(html)
