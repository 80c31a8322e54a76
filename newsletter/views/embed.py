"""Signup from pages on the center's other sites, through the embed code
(newsletter.embed): a JSON endpoint for the script, a plain form POST for browsers
without it, and Advances' own thank-you page.

Both endpoints are exempt from Django's CSRF check, which relies on a cookie that a
page on another site cannot have. What stands in for it: they use no cookie and no
session at all (so a forged request has no ambient authority to borrow: it can only
ask for what any visitor may ask for, a confirmation email), and every POST must come
from an origin on NEWSLETTER_EMBED_ORIGINS, which browsers state in the Origin header
and pages cannot change. Anything else gets a 403 and changes nothing. The signup
itself is the site's: the same form, honeypot, rate limits (the same django-ratelimit
group and keys) and `subscriptions.subscribe`, whose answer never depends on whether
the address is known.
"""

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe
from django.views.decorators.vary import vary_on_headers
from django_ratelimit.decorators import ratelimit

from newsletter import embed, subscriptions
from newsletter.forms import EmbedSubscribeForm
from newsletter.views.clients import (
    SIGNUP_RATELIMIT_GROUP,
    client_ip,
    client_network,
    signup_rate_per_address,
    signup_rate_per_ip,
    submitted_address,
)

PREFLIGHT_MAX_AGE = 600


def _origin_for_consent_log(request: HttpRequest, *, source: str, page: str | None):
    address = client_ip(request)
    return subscriptions.Origin(
        ip_address=None if address is None else str(address),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        source=f"embed {source} on {embed.normalize_origin(page) or 'an unknown page'}",
    )


def _signup(request: HttpRequest, form: EmbedSubscribeForm, *, page: str | None) -> None:
    """The signup rule, as the on-site form applies it: a filled-in honeypot is
    answered like any other signup and ignored."""
    if form.cleaned_data["website"]:
        return
    subscriptions.subscribe(
        email=form.cleaned_data["email"],
        first_name=form.cleaned_data["first_name"],
        topics=form.cleaned_data["topics"],
        language=form.cleaned_data["language"],
        source=form.cleaned_data["source"],
        origin=_origin_for_consent_log(request, source=form.cleaned_data["source"], page=page),
    )


def _with_cors(response: HttpResponse, origin: str) -> HttpResponse:
    # Only ever an allowed origin, echoed; never "*" and never credentials.
    response["Access-Control-Allow-Origin"] = origin
    return response


# CSRF exempt: see the module docstring (Origin on the allow-list, no cookies).
@csrf_exempt
@vary_on_headers("Origin")
@require_http_methods(["POST", "OPTIONS"])
@ratelimit(
    group=SIGNUP_RATELIMIT_GROUP,
    key=client_network,
    rate=signup_rate_per_ip,
    method="POST",
    block=False,
)
@ratelimit(
    group=SIGNUP_RATELIMIT_GROUP,
    key=submitted_address,
    rate=signup_rate_per_address,
    method="POST",
    block=False,
)
def subscribe_json(request: HttpRequest) -> HttpResponse:
    """The script's endpoint: a form-encoded signup in, a JSON answer out, with a
    `message` in the language the script asked for."""
    origin = request.META.get("HTTP_ORIGIN", "")
    language = embed.reader_language(
        request.POST.get("language") if request.method == "POST" else None
    )
    with translation.override(language):
        if not embed.is_allowed_origin(origin):
            # No CORS headers: the browser withholds even this answer from the page.
            return JsonResponse(
                {
                    "ok": False,
                    "error": "origin_not_allowed",
                    "message": _("This page is not allowed to sign readers up for Advances."),
                },
                status=403,
            )
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = "POST"
            response["Access-Control-Allow-Headers"] = "Content-Type, Accept"
            response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
            return _with_cors(response, origin)
        if getattr(request, "limited", False):
            return _with_cors(
                JsonResponse(
                    {
                        "ok": False,
                        "language": language,
                        "error": "rate_limited",
                        "message": _("Too many signups from here. Please try again later."),
                    },
                    status=429,
                ),
                origin,
            )
        form = EmbedSubscribeForm(request.POST)
        if not form.is_valid():
            errors = {
                field: [str(error["message"]) for error in field_errors]
                for field, field_errors in form.errors.get_json_data().items()
            }
            return _with_cors(
                JsonResponse(
                    {
                        "ok": False,
                        "language": language,
                        "error": "invalid",
                        "message": _("Please check the form: %(problems)s")
                        % {"problems": " ".join(" ".join(each) for each in errors.values())},
                        "errors": errors,
                    },
                    status=400,
                ),
                origin,
            )
        _signup(request, form, page=origin)
        # Rule 4: new, pending, active, unsubscribed, or a bot: the same answer.
        return _with_cors(
            JsonResponse(
                {
                    "ok": True,
                    "language": language,
                    "message": _(
                        "Thank you. If that address can receive Advances, we have just sent "
                        "it an email: open it and choose “Confirm my subscription”."
                    ),
                }
            ),
            origin,
        )


def _page_of(request: HttpRequest) -> str | None:
    """The page a plain form POST came from: its Origin, or its Referer when a browser
    sends no Origin."""
    return request.META.get("HTTP_ORIGIN") or request.META.get("HTTP_REFERER") or None


def _own_origin(request: HttpRequest) -> str | None:
    return embed.normalize_origin(f"{request.scheme}://{request.get_host()}")


# CSRF exempt: see the module docstring (Origin or Referer on the allow-list, no cookies).
@csrf_exempt
@require_http_methods(["POST"])
@ratelimit(group=SIGNUP_RATELIMIT_GROUP, key=client_network, rate=signup_rate_per_ip)
@ratelimit(group=SIGNUP_RATELIMIT_GROUP, key=submitted_address, rate=signup_rate_per_address)
def subscribe_form(request: HttpRequest) -> HttpResponse:
    """The embed without JavaScript: a plain form POST from an allowed page that ends
    on Advances' thank-you page. The form's corrections page posts here too, from
    Advances itself."""
    page = _page_of(request)
    from_advances = page is not None and embed.normalize_origin(page) == _own_origin(request)
    if not (embed.is_allowed_origin(page) or from_advances):
        return render(request, "newsletter/embed/refused.html", status=403)
    return_to = embed.page_to_return_to(
        request.POST.get("return_to") or request.META.get("HTTP_REFERER") or page
    )
    language = embed.reader_language(request.POST.get("language"))
    with translation.override(language):
        form = EmbedSubscribeForm(request.POST)
        if not form.is_valid():
            return render(
                request,
                "newsletter/embed/form.html",
                {
                    "form": form,
                    "return_to": return_to or "",
                    "consent_wording": subscriptions.CONSENT_WORDING,
                },
                status=400,
            )
        _signup(request, form, page=page)
        thanks = reverse("newsletter:embed_thanks")
    query = urlencode({"from": return_to}) if return_to else ""
    return redirect(f"{thanks}?{query}" if query else thanks)


@require_safe
def thanks(request: HttpRequest) -> HttpResponse:
    """Advances' thank-you page for the embed, with a link back to the reader's page
    only when that page is on an allowed origin."""
    return render(
        request,
        "newsletter/embed/thanks.html",
        {"return_to": embed.page_to_return_to(request.GET.get("from"))},
    )
