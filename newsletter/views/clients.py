"""Who is asking: the client's address and the signup rate-limit keys, shared by every
view that takes a signup."""

import ipaddress
import logging
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from newsletter import subscriptions

logger = logging.getLogger(__name__)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Which peers' X-Forwarded-For is believed. Anyone can send that header; only a proxy
# we run (Caddy in docker-compose) appends the address it really saw. Without this
# every reader behind the proxy shares the proxy's address (one flood blocks them all),
# and with a header believed from anyone, a flood names a new address per request.


@lru_cache(maxsize=8)
def trusted_networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """TRUSTED_PROXIES as networks; an entry that is neither an address nor a network is
    left out here (the system check newsletter.E010 reports it)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _parse(value: str) -> Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv6 zone ("%eth0") means nothing off this host, and PostgreSQL's inet refuses it.
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_trusted_proxy(address: Address) -> bool:
    return any(address in network for network in trusted_networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request: HttpRequest) -> Address | None:
    """The client's address, or None when there is none.

    REMOTE_ADDR is the peer that connected. Only when that peer is one of
    TRUSTED_PROXIES is X-Forwarded-For read, from the right: each trusted proxy appended
    the address it saw, so the first address from the right that is not a trusted proxy
    is the client; anything left of it was written by the client and is ignored.
    REMOTE_ADDR may be empty (an app server on a Unix socket) or unparsable when
    misconfigured: then None."""
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    if peer is None or not is_trusted_proxy(peer):
        return peer
    client = peer
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _parse(hop)
        if address is None:
            break  # garbage from the far side of our proxies: believe nothing beyond it
        client = address
        if not is_trusted_proxy(address):
            break
    return client


def client_ip_for_ratelimit(request: HttpRequest) -> str:
    """django-ratelimit's "ip" key (RATELIMIT_IP_META_KEY), e.g. the admin login limit:
    the same client address, or an unspecified one that all address-less requests
    share (django-ratelimit itself raises on an empty REMOTE_ADDR: a 500)."""
    address = client_ip(request)
    return "0.0.0.0" if address is None else str(address)  # noqa: S104 (a key, not a bind)


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
            "Behind a proxy, list it in TRUSTED_PROXIES or make REMOTE_ADDR the client's.",
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
