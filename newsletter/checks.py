"""System checks (`manage.py check`, run on every start): settings that leave the
list open to forged ESP events or forged client addresses, embed origins that do not
say what they seem to, and a send rate that workers would not share."""

import ipaddress
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from newsletter import embed

# ESPs whose webhooks Anymail also verifies with a signing key of their own, and the
# setting (under Anymail's name) that holds it.
SIGNING_KEYS = {
    "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",
    "mailersend": "MAILERSEND_SIGNING_SECRET",
    "mandrill": "MANDRILL_WEBHOOK_KEY",
    "postal": "POSTAL_WEBHOOK_KEY",
    "resend": "RESEND_SIGNING_SECRET",
}


@register(Tags.security, deploy=False)
def check_webhook_secret(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """ESP webhooks are refused without ANYMAIL_WEBHOOK_SECRET, so bounces and
    complaints would never reach the list; with it but without the ESP's signing key,
    only the shared secret protects them."""
    if settings.DEBUG:
        return []
    warnings = []
    secret = settings.ANYMAIL.get("WEBHOOK_SECRET")
    if not secret:
        warnings.append(
            Warning(
                "ANYMAIL_WEBHOOK_SECRET is not set: the ESP webhooks at /anymail/<esp>/tracking/ "
                "refuse every event, so bounces and complaints do not suppress anyone.",
                hint='Set ANYMAIL_WEBHOOK_SECRET="user:long-random-password" and give the ESP '
                "https://user:long-random-password@<host>/anymail/<esp>/tracking/.",
                id="newsletter.W001",
            )
        )
    elif ":" not in str(secret):
        warnings.append(
            Warning(
                "ANYMAIL_WEBHOOK_SECRET must be user:password (HTTP basic auth).",
                id="newsletter.W002",
            )
        )
    key = SIGNING_KEYS.get(settings.ESP)
    if key and not settings.ANYMAIL.get(key):
        warnings.append(
            Warning(
                f"ESP={settings.ESP} but {key} is not set: Anymail cannot verify that "
                "webhook events really come from the ESP.",
                hint=f"Set {key} from the ESP's webhook settings.",
                id="newsletter.W003",
            )
        )
    return warnings


@register(Tags.security)
def check_trusted_proxies(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Each TRUSTED_PROXIES entry must be an address or a network: a typo would
    otherwise silently trust nobody (every reader behind the proxy shares one rate
    limit), and a network of everyone would let any client forge its address."""
    problems: list[CheckMessage] = []
    for entry in settings.TRUSTED_PROXIES:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(
                Error(
                    f"TRUSTED_PROXIES entry {entry!r} is neither an IP address nor a network.",
                    hint="Use addresses or CIDR networks, comma-separated, e.g. "
                    "TRUSTED_PROXIES=172.28.0.10,10.0.0.0/24.",
                    id="newsletter.E010",
                )
            )
            continue
        if network.prefixlen == 0:
            problems.append(
                Error(
                    f"TRUSTED_PROXIES entry {entry!r} trusts every address: any client could "
                    "name its own address and escape the rate limits.",
                    hint="List only the reverse proxies in front of this server.",
                    id="newsletter.E011",
                )
            )
    return problems


@register()
def check_embed_origins(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """Every entry of NEWSLETTER_EMBED_ORIGINS is an origin the embed can match."""
    return [
        Warning(
            f"NEWSLETTER_EMBED_ORIGINS entry {entry!r} {problem}.",
            hint="List origins only, comma-separated, e.g. "
            "NEWSLETTER_EMBED_ORIGINS=https://www.example.org,https://es.example.org",
            id="newsletter.W004",
        )
        for entry in settings.NEWSLETTER_EMBED_ORIGINS
        if (problem := embed.origin_problem(entry))
    ]


@register(deploy=False)
def check_shared_send_rate(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """NEWSLETTER_MAX_RATE is shared by every worker through REDIS_URL; with workers on
    another broker and no Redis, each worker process would hold it on its own."""
    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.NEWSLETTER_MAX_RATE or settings.REDIS_URL:
        return []
    return [
        Warning(
            "NEWSLETTER_MAX_RATE is set and tasks go to workers, but REDIS_URL is not set: each "
            "worker process holds the rate on its own, so together they send faster.",
            hint="Set REDIS_URL (the broker may stay CELERY_BROKER_URL).",
            id="newsletter.W010",
        )
    ]
