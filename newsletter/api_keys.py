"""Keys for the center's other systems (newsletter.views.api): made, checked, revoked.

A key is 32 random bytes, shown once when it is made; only its SHA-256 hash is kept
(a random key needs no slow password hash: there is nothing to guess), and it is looked
up by that hash, so checking a key never compares secrets byte by byte.
"""

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.utils import timezone

from newsletter.models import ApiKey

KEY_PREFIX = "adv_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_api_key(
    *, name: str, scope: str, created_by: AbstractBaseUser | AnonymousUser | None = None
) -> tuple[ApiKey, str]:
    """Make a key and return it with its secret, which is never stored or shown again."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        name=name,
        scope=scope,
        prefix=secret[:10],
        key_hash=_hash(secret),
        created_by=created_by if isinstance(created_by, User) else None,
    )
    return api_key, secret


def revoke_api_key(*, api_key: ApiKey) -> bool:
    """Stop a key working from the next request on. Idempotent: False if it already was."""
    return bool(
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def authenticate(*, secret: str) -> ApiKey | None:
    """The live (not revoked) key with this secret, its last use recorded; None for a
    revoked, unknown or malformed one."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    api_key = ApiKey.objects.filter(key_hash=_hash(secret), revoked_at__isnull=True).first()
    if api_key is None:
        return None
    api_key.last_used_at = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=api_key.last_used_at)
    return api_key


def may_write(api_key: ApiKey) -> bool:
    return api_key.scope == ApiKey.Scope.WRITE
