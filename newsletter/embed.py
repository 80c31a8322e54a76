"""The embeddable signup: which web pages may carry it, and the code an editor pastes.

A signup from an embed is an ordinary signup: the embed views validate with the site's
form and call `subscriptions.subscribe`, so double opt-in, the consent wording, the
rate limits and the identical answer for known addresses are the same rules, not
copies of them. What this module adds is the origin allow-list (NEWSLETTER_EMBED_ORIGINS)
and the snippet.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import translation
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from newsletter import subscriptions
from newsletter.models import Subscriber, Topic

# What a source name may be: it is recorded on subscribers, filtered on in the admin,
# and written into HTML attributes and ids.
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# Recorded when an embed's form comes without a source name.
DEFAULT_SOURCE = "embed"
SNIPPET_TEMPLATE = "newsletter/embed/snippet.html"
# Shown by the script when Advances cannot be reached at all.
OFFLINE_MESSAGE = _("We couldn't reach Advances just now. Please try again in a moment.")
# The snippet's own words. A snippet that follows the page's language carries each in
# every language (data-advances-<code> attributes), and the script shows the page's.
SNIPPET_TEXTS = {
    "title": _(
        "Get Advances, the cancer center's free patient-education e-newsletter, in your inbox."
    ),
    "email": _("Email address"),
    "first_name": _("First name (optional)"),
    "topics": _("Topics"),
    "honeypot": _("Leave this field empty"),
    # The wording the consent log keeps; its translation is the catalogue's entry for it.
    "consent": subscriptions.CONSENT_WORDING,
    "button": _("Subscribe"),
}


class InvalidSource(ValueError):
    """A source name must be lower-case letters, digits, '-' or '_' (at most 100)."""


class InvalidPage(ValueError):
    """A page address must be an absolute http(s) URL (at most 2,000 characters)."""


def normalize_origin(value: str | None) -> str | None:
    """`scheme://host[:port]` in lower case without a default port, or None for
    anything that is not an http(s) origin ("null", a path, garbage)."""
    if not value:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


def origin_problem(entry: str) -> str | None:
    """What is wrong with one entry of NEWSLETTER_EMBED_ORIGINS as an origin, or None.
    An entry that is no origin at all allows nothing; one with a path still allows its
    whole site, which is not what whoever wrote the path meant."""
    if normalize_origin(entry) is None:
        return "is not an origin (scheme://host[:port], http or https): it allows nothing"
    parts = urlsplit(entry.strip())
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return (
            "has a path, query or fragment: an origin is only scheme://host[:port], and "
            "this one allows every page of its site"
        )
    return None


def allowed_origins() -> frozenset[str]:
    """The origins of NEWSLETTER_EMBED_ORIGINS, normalised; unparsable entries count
    for nothing (the `newsletter` system check names them)."""
    return frozenset(
        origin
        for origin in (normalize_origin(entry) for entry in settings.NEWSLETTER_EMBED_ORIGINS)
        if origin
    )


def is_allowed_origin(origin: str | None) -> bool:
    """Whether a page of this origin may sign readers up through the embed."""
    normalized = normalize_origin(origin)
    return normalized is not None and normalized in allowed_origins()


def advances_origin() -> str:
    """Advances' own origin, from SITE_URL."""
    return normalize_origin(settings.SITE_URL) or ""


def page_to_return_to(url: str | None) -> str | None:
    """The address of the page a reader came from, if it is on an allowed origin:
    the only kind of link back Advances' thank-you page offers."""
    if not url or len(url) > 2000 or not is_allowed_origin(url):
        return None
    return url


def clean_source(name: str) -> str:
    """A source name as recorded, or InvalidSource."""
    name = name.strip().lower()
    if not SOURCE_RE.match(name):
        raise InvalidSource(name)
    return name


def language_codes() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def reader_language(value: str | None) -> str:
    """One of settings.LANGUAGES for a page's `lang` ("es-MX" -> "es"); the site's
    default for anything else."""
    code = (value or "").strip().lower().replace("_", "-").split("-")[0]
    return code if code in language_codes() else settings.LANGUAGE_CODE


@dataclass(frozen=True)
class SourceCount:
    source: str
    total: int
    pending: int
    active: int
    left: int


def count_by_source() -> list[SourceCount]:
    """Subscribers per signup source, by state, most first: one query."""
    Status = Subscriber.Status
    rows = (
        Subscriber.objects.values("source")
        .annotate(
            total=Count("pk"),
            pending=Count("pk", filter=Q(status=Status.PENDING)),
            active=Count("pk", filter=Q(status=Status.ACTIVE)),
        )
        .order_by("-total", "source")
    )
    return [
        SourceCount(
            source=row["source"],
            total=row["total"],
            pending=row["pending"],
            active=row["active"],
            left=row["total"] - row["pending"] - row["active"],
        )
        for row in rows
    ]


def clean_page(url: str) -> str:
    """The address of the page that will carry the code, or InvalidPage."""
    url = url.strip()
    if len(url) > 2000 or normalize_origin(url) is None:
        raise InvalidPage(url)
    return url


def snippet(*, source: str, language: str = "", page: str = "") -> str:
    """The HTML an editor pastes into a page of an allowed origin: a plain form that
    works without JavaScript, and the optional script (a static file on Advances) that
    submits it in place. Labels are in `language` (the site's default when empty); the
    script answers in that language, or in the host page's `<html lang>` when
    `language` is empty. `page`, the address of the page that carries it, is where the
    thank-you page links back to when the script does not run (without it, the page the
    browser names in its Referer). Raises InvalidSource or InvalidPage."""
    source = clean_source(source)
    page = clean_page(page) if page else ""
    chosen = reader_language(language)
    site = settings.SITE_URL.rstrip("/")
    topics = list(Topic.objects.order_by("position", "name"))
    offline = {}
    in_every_language: dict[str, list[tuple[str, str]]] = {key: [] for key in SNIPPET_TEXTS}
    for code in language_codes():
        with translation.override(code):
            offline[code] = str(OFFLINE_MESSAGE)
            for key, text in SNIPPET_TEXTS.items():
                in_every_language[key].append((code, str(text)))
    with translation.override(chosen):
        texts = {key: str(text) for key, text in SNIPPET_TEXTS.items()}
        # Fixed language: the words as they are. Following the page: each in every
        # language too, for the script to pick from.
        alternatives = {
            key: ""
            if language
            else format_html_join("", ' data-advances-{}="{}"', in_every_language[key])
            for key in SNIPPET_TEXTS
        }
        return render_to_string(
            SNIPPET_TEMPLATE,
            {
                "source": source,
                "page": page,
                "language": chosen,
                "fixed_language": bool(language),
                "form_action": site + reverse("newsletter:embed_subscribe"),
                "json_endpoint": site + reverse("newsletter:embed_subscribe_json"),
                "script_url": site + static("newsletter/embed.js"),
                "topics": topics,
                "texts": texts,
                "alternatives": alternatives,
                "offline_en": offline.get("en", ""),
                "offline_es": offline.get("es", ""),
            },
        ).strip()
