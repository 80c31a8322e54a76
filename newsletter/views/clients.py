"""Who is asking: the client's address and the signup rate-limit keys, shared by every
view that takes a signup."""

import ipaddress
import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from newsletter import subscriptions

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address from REMOTE_ADDR, or None when there is none: the server
    sets it, and leaves it empty (an app server on a Unix socket) or unparsable when
    misconfigured. An IPv6 zone ("%eth0") is dropped: it means nothing off this host,
    and PostgreSQL's inet type refuses it."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))
    return address


def origin_of(request: HttpRequest) -> subscriptions.Origin:
    address = client_ip(request)
    try:
        referer_path = urlsplit(request.META.get("HTTP_REFERER", "")).path
    except ValueError:  # not a URL at all, e.g. "http://["
        referer_path = ""
    return subscriptions.Origin(
        ip_address=None if address is None else str(address),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        source=referer_path or request.path,
    )


def signup_rate_per_ip(group: str, request: HttpRequest) -> str | None:
    # Without a client address there is nothing to count per IP; the per-address limit
    # still applies. (django-ratelimit's own "ip" key raises here: a 500 for every signup.)
    if client_ip(request) is None:
        logger.warning(
            "No client address in REMOTE_ADDR (%r): the per-IP signup limit does not apply. "
            "Behind a proxy, make REMOTE_ADDR the client's address.",
            request.META.get("REMOTE_ADDR"),
        )
        return None
    return settings.NEWSLETTER_SIGNUP_RATE_IP


def client_network(group: str, request: HttpRequest) -> str:
    """What the per-IP signup limit counts: an IPv4 address, or an IPv6 address's /64
    (one customer's whole network), as django-ratelimit's "ip" key does."""
    address = client_ip(request)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address)
    return str(address)


def signup_rate_per_address(group: str, request: HttpRequest) -> str:
    return settings.NEWSLETTER_SIGNUP_RATE_EMAIL


def submitted_address(group: str, request: HttpRequest) -> str:
    return subscriptions.normalize_email(request.POST.get("email", ""))


# The on-site form's django-ratelimit group (its view's dotted name, the default), shared
# by every other way to sign up from a browser, so one client or one address has one
# allowance whichever form it uses.
SIGNUP_RATELIMIT_GROUP = "newsletter.views.reader.subscribe"
