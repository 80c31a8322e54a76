"""An issue becomes one subject, one HTML and one text body, rendered once per version.

What differs per reader (the salutation and their own links) is left as placeholders,
filled in by cheap substitution (`personalise`) or handed to the ESP as merge data in
its own placeholder syntax (`in_esp_syntax`). No template is rendered per recipient.
"""

import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import css_inline
import markdown
import nh3
import textstat
from django.conf import settings
from django.db.models import Max
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

from newsletter.models import EducationPiece, Issue

# --- Markdown, sanitised on an allow-list ---------------------------------------------

ALLOWED_TAGS = {
    "p", "br", "hr", "h2", "h3", "h4", "strong", "em", "b", "i", "a", "ul", "ol", "li",
    "blockquote", "img", "table", "thead", "tbody", "tr", "th", "td", "code", "pre",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title"},
    "th": {"scope"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}
IMG_RE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
ALT_RE = re.compile(r'\balt="([^"]*)"', re.IGNORECASE)


def markdown_to_html(text: str) -> str:
    """Markdown as HTML that is safe to put in an email or page: no script, event
    handler, style, frame or `javascript:` URL survives."""
    rendered = markdown.markdown(text, extensions=["sane_lists", "tables"])
    return nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
    )


def images_without_alt(text: str) -> int:
    """How many images in this Markdown lack alt text (screen readers need it)."""
    return sum(
        1
        for tag in IMG_RE.findall(markdown_to_html(text))
        if not (match := ALT_RE.search(tag)) or not match.group(1).strip()
    )


TEXT_CONFIG = ParserConfig(css=CSS_PROFILES["relaxed"], display_links=True, display_images=True)


def html_to_text(fragment: str) -> str:
    """Readable plain text: paragraphs kept, links written out as [label](url)."""
    return get_text(fragment, TEXT_CONFIG).strip()


def reading_grade(text: str) -> float:
    """Flesch-Kincaid grade of Markdown text. Patient education aims at 8 or below."""
    return reading_grade_of_text(html_to_text(markdown_to_html(text)))


def reading_grade_of_text(plain: str) -> float:
    return round(textstat.flesch_kincaid_grade(plain), 1) if plain.strip() else 0.0


READING_GRADE_TARGET = 8


# --- Per-recipient placeholders ---------------------------------------------------------

# The values each recipient gets; the rendered issue carries [[advances.NAME]] for each.
PLACEHOLDERS = ("salutation", "unsubscribe_url", "preferences_url")
PLACEHOLDER_RE = re.compile(r"\[\[advances\.(\w+)\]\]")


def placeholder(name: str) -> str:
    return f"[[advances.{name}]]"


# A name is shown as text in both parts; without these it needs no escaping in HTML, so
# one value serves the HTML and the text part (and an ESP merges one value, not two).
NOT_IN_NAMES = str.maketrans("", "", '<>&"')


def recipient_values(
    *, first_name: str, unsubscribe_url: str, preferences_url: str
) -> dict[str, str]:
    # In the active language: the issue's, while its batch is sent (sending._dispatch).
    name = first_name.translate(NOT_IN_NAMES).strip()
    return {
        "salutation": _("Hello %(name)s,") % {"name": name} if name else _("Hello,"),
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
    }


def preview_values(*, first_name: str) -> dict[str, str]:
    """What an editor's preview shows in place of a reader's own values."""
    signup_url = settings.SITE_URL + reverse("newsletter:subscribe")
    return recipient_values(
        first_name=first_name, unsubscribe_url=signup_url, preferences_url=signup_url
    )


@dataclass(frozen=True)
class RenderedIssue:
    subject: str
    html: str
    text: str

    def personalise(self, values: dict[str, str]) -> "RenderedIssue":
        """This issue for one reader: one regex pass per part."""

        def fill(match: re.Match[str]) -> str:
            return values.get(match.group(1), "")

        return RenderedIssue(
            subject=self.subject,
            html=PLACEHOLDER_RE.sub(fill, self.html),
            text=PLACEHOLDER_RE.sub(fill, self.text),
        )

    def in_esp_syntax(self, field_format: str) -> "RenderedIssue":
        """The same issue with each placeholder in an ESP's merge syntax, e.g.
        `%recipient.{}%` for Mailgun, for batch sends with merge data."""

        def convert(match: re.Match[str]) -> str:
            return field_format.format(match.group(1))

        return RenderedIssue(
            subject=self.subject,
            html=PLACEHOLDER_RE.sub(convert, self.html),
            text=PLACEHOLDER_RE.sub(convert, self.text),
        )


# --- The issue, once per version ----------------------------------------------------------


@dataclass(frozen=True)
class Section:
    title: str
    body_html: str
    body_text: str
    cta_label: str
    cta_url: str


def piece_section(piece: EducationPiece) -> Section:
    body_html = markdown_to_html(piece.body)
    return Section(
        title=piece.title,
        body_html=body_html,
        body_text=html_to_text(body_html),
        cta_label=piece.cta_label,
        cta_url=piece.cta_url,
    )


def issue_sections(issue: Issue) -> list[Section]:
    pieces = [item.piece for item in issue.issue_pieces.select_related("piece")]
    return [piece_section(piece) for piece in pieces]


def archive_path(issue: Issue) -> str:
    """The issue's page in the archive of its own language."""
    with translation.override(issue.language):
        return reverse("newsletter:archive_issue", args=[issue.slug])


def archive_url(issue: Issue) -> str:
    return settings.SITE_URL + archive_path(issue)


_rendered: OrderedDict[tuple[int, str], RenderedIssue] = OrderedDict()
RENDER_CACHE_SIZE = 16


def issue_version(issue: Issue) -> str:
    """Changes whenever the issue or any of its pieces changes."""
    pieces_changed = issue.pieces.aggregate(latest=Max("updated_at"))["latest"]
    return f"{issue.updated_at.isoformat()}/{pieces_changed.isoformat() if pieces_changed else ''}"


def render_issue(issue: Issue) -> RenderedIssue:
    """The issue's subject, HTML and text with placeholders, rendered once per version
    (see issue_version) in each process, however many recipients follow."""
    key = (issue.pk, issue_version(issue))
    if key not in _rendered:
        _rendered[key] = _render(issue)
        while len(_rendered) > RENDER_CACHE_SIZE:
            _rendered.popitem(last=False)
    return _rendered[key]


def _render(issue: Issue) -> RenderedIssue:
    # The issue's language decides every word around its content, whoever renders it.
    with translation.override(issue.language):
        return _render_in_language(issue)


def _render_in_language(issue: Issue) -> RenderedIssue:
    intro_html = markdown_to_html(issue.intro)
    context = {
        "issue": issue,
        "subject": issue.subject,
        "preheader": issue.preheader,
        "intro_html": intro_html,
        "intro_text": html_to_text(intro_html),
        "sections": issue_sections(issue),
        # A welcome-series step is never in the archive: no "view in browser" link.
        "archive_url": archive_url(issue) if issue.kind == Issue.Kind.ISSUE else "",
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        "site_url": settings.SITE_URL,
        **{name: placeholder(name) for name in PLACEHOLDERS},
    }
    page = render_to_string("newsletter/emails/issue.html", context)
    return RenderedIssue(
        subject=issue.subject,
        html=_inline_css(page),
        text=render_to_string("newsletter/emails/issue.txt", context),
    )


def _inline_css(page: str) -> str:
    # No remote stylesheets: everything the email needs is in the page itself.
    return _inliner().inline(page)


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=True)


def word_count(rendered: RenderedIssue) -> int:
    return len(rendered.text.split())
