from django.conf import settings
from django.http import HttpRequest

from newsletter.subscriptions import CONSENT_WORDING


def newsletter(request: HttpRequest) -> dict[str, str]:
    return {
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        "consent_wording": CONSENT_WORDING,
    }
