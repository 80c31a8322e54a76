"""ESP tracking webhooks: Anymail's own views, made safe to publish."""

import logging
from collections.abc import Callable
from typing import Any

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailWebhookValidationFailure
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt

from newsletter.views.site import page_not_found

logger = logging.getLogger(__name__)


class _ReadablePayloadOnly:
    """Mixed into Anymail's tracking webhook views: a request that Anymail's checks or
    parser cannot even read (not the ESP's format at all) is a 400 like a wrong
    signature, not a 500, which the ESP would retry for days."""

    def run_validators(self, request: HttpRequest) -> None:
        try:
            super().run_validators(request)  # type: ignore[misc]
        except AnymailWebhookValidationFailure:
            raise
        except Exception as error:
            raise AnymailWebhookValidationFailure("Unreadable webhook request") from error

    def parse_events(self, request: HttpRequest) -> list:
        try:
            return super().parse_events(request)  # type: ignore[misc]
        except Exception as error:
            raise AnymailWebhookValidationFailure("Unreadable webhook payload") from error


def tracking_webhook(view_class: type) -> "Callable[..., HttpResponse]":
    """Anymail's tracking webhook view for one ESP, made safe to publish.

    Anymail checks the basic-auth secret (ANYMAIL_WEBHOOK_SECRET) and the ESP's
    signature where it has one, then sends the tracking signal (newsletter.tracking).
    """
    readable: Any = type(view_class.__name__, (_ReadablePayloadOnly, view_class), {})
    anymail_view = readable.as_view()

    # Anymail views are csrf_exempt themselves: ESPs post without a session or token,
    # and basic auth (plus the ESP's signature) is what authenticates them.
    @csrf_exempt
    def webhook(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        # Without a secret Anymail would accept events from anyone, and a forged
        # bounce would silently drop a reader from the list: refuse until there is one.
        if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
            logger.error("ESP webhook refused: ANYMAIL_WEBHOOK_SECRET is not set")
            return page_not_found(request, Exception("webhooks off"))
        try:
            return anymail_view(request, *args, **kwargs)
        except ImproperlyConfigured as error:  # e.g. Mailgun without its signing key
            logger.error("ESP webhook refused: %s", error)
            return page_not_found(request, error)

    return webhook


def tracking_webhook_urls() -> list[URLPattern]:
    """/anymail/<esp>/tracking/ for every ESP Anymail supports (and no inbound mail)."""
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        name = getattr(pattern, "name", None) or ""
        # sendinblue/ is Anymail's deprecated alias of brevo/: not offered to new setups.
        if (
            isinstance(pattern, URLPattern)
            and name.endswith("_tracking_webhook")
            and name != "sendinblue_tracking_webhook"
        ):
            view_class = pattern.callback.view_class  # type: ignore[attr-defined]
            patterns.append(path(str(pattern.pattern), tracking_webhook(view_class), name=name))
    return patterns
