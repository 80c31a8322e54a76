"""Signed, purpose-bound links.

A token is Django's signing of (subscriber id, subscriber secret), salted per purpose,
so a confirm token cannot unsubscribe and an unsubscribe token cannot open the
preferences page. Rotating a subscriber's secret (or erasing them) voids every link.
"""

import enum
import hmac
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.core import signing

from newsletter.errors import NewsletterError
from newsletter.models import Subscriber


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


class InvalidToken(NewsletterError):
    """Forged, altered, for another purpose, or voided: nothing to show."""


class ExpiredToken(NewsletterError):
    """Genuine but too old. Carries the subscriber so a new link can be offered."""

    def __init__(self, subscriber: Subscriber) -> None:
        super().__init__("expired link")
        self.subscriber = subscriber


def _salt(purpose: Purpose) -> str:
    return f"advances.newsletter.{purpose}"


@cache
def _signer(purpose: Purpose, key: str) -> signing.TimestampSigner:
    # One signer per purpose (and key): sending signs two links for every reader.
    return signing.TimestampSigner(key=key, salt=_salt(purpose))


def make_token(subscriber: Subscriber, purpose: Purpose) -> str:
    return token_for(subscriber.pk, subscriber.secret, purpose)


def token_for(subscriber_id: int, secret: str, purpose: Purpose) -> str:
    """The same token as make_token, from the two values it signs."""
    return _signer(purpose, settings.SECRET_KEY).sign_object([subscriber_id, secret])


def read_token(token: str, purpose: Purpose, *, max_age: timedelta | None = None) -> Subscriber:
    """The subscriber a genuine token of this purpose names.

    Raises InvalidToken for anything forged, altered, malformed, of another purpose or
    voided by a new secret, and ExpiredToken for a genuine one older than max_age.
    """
    expired = False
    try:
        payload = signing.loads(token, salt=_salt(purpose), max_age=max_age)
    except signing.SignatureExpired:
        # The signature is good, only old: read it again without the age check.
        payload = signing.loads(token, salt=_salt(purpose))
        expired = True
    except (signing.BadSignature, ValueError, UnicodeError) as exc:
        raise InvalidToken("bad signature") from exc
    if not (
        isinstance(payload, list)
        and len(payload) == 2
        and isinstance(payload[0], int)
        and isinstance(payload[1], str)
    ):
        raise InvalidToken("malformed payload")
    subscriber_id, secret = payload
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or not hmac.compare_digest(subscriber.secret, secret):
        raise InvalidToken("unknown subscriber or voided link")
    if expired:
        raise ExpiredToken(subscriber)
    return subscriber
