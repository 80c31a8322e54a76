"""Two security measures Django does not ship: a Permissions-Policy header, and
throttling of failed admin logins. The other headers come from Django's
SecurityMiddleware and django-csp, configured in settings."""

import functools
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django_ratelimit.core import get_usage
from django_ratelimit.exceptions import Ratelimited


class PermissionsPolicyMiddleware:
    """Sends settings.PERMISSIONS_POLICY on every response that has none yet."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if settings.PERMISSIONS_POLICY:
            response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


ADMIN_LOGIN_GROUP = "admin-login"


def admin_login_rate(group: str, request: HttpRequest) -> str:
    return settings.ADMIN_LOGIN_RATE


def submitted_username(group: str, request: HttpRequest) -> str:
    return request.POST.get("username", "").strip().lower()


# One count per client IP (one machine trying many accounts) and one per username
# (many machines trying one account). django-ratelimit's "ip" reads REMOTE_ADDR.
ADMIN_LOGIN_KEYS: tuple[str | Callable[[str, HttpRequest], str], ...] = (
    "ip",
    submitted_username,
)


def throttle_failed_logins(
    login_view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """Wrap a login view so that once settings.ADMIN_LOGIN_RATE failed attempts came
    from one IP or named one username within the window, every further POST gets the
    429 page until the window ends, before the password is even looked at. Only
    failures count: a successful login (a redirect) or a refused CSRF token does not.

    Locking by username lets anyone lock an editor out for one window; that is the
    price of stopping a slow, distributed guess at a known account."""

    @functools.wraps(login_view)
    def throttled_login(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.method != "POST":
            return login_view(request, *args, **kwargs)
        for key in ADMIN_LOGIN_KEYS:
            usage = get_usage(request, group=ADMIN_LOGIN_GROUP, key=key, rate=admin_login_rate)
            if usage is not None and usage["count"] >= usage["limit"]:
                raise Ratelimited
        response = login_view(request, *args, **kwargs)
        # The login form came back with errors: a failed attempt.
        if response.status_code == 200:
            for key in ADMIN_LOGIN_KEYS:
                get_usage(
                    request,
                    group=ADMIN_LOGIN_GROUP,
                    key=key,
                    rate=admin_login_rate,
                    increment=True,
                )
        return response

    return throttled_login
