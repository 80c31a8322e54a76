from django.conf import settings
from django.http import HttpRequest

from newsletter import languages
from newsletter.subscriptions import CONSENT_WORDING


def newsletter(request: HttpRequest) -> dict[str, object]:
    return {
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        "consent_wording": CONSENT_WORDING,
        # The public base URL: canonical and Open Graph addresses name the site as
        # readers reach it, not as the app server behind the proxy sees it.
        "site_url": settings.SITE_URL,
        # The language switch and the hreflang alternates: this page in each language.
        "language_links": languages.same_page_in_each_language(request),
    }
