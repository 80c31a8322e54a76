"""The reader's pages: the home page, the archive, signup, confirmation, unsubscribe,
preferences and data rights. Thin views over the subscription services. Every failure a
browser, a mail client or an attacker can cause gets a page with a 4xx status, never a
500."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.feedgenerator import Atom1Feed
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe
from django_ratelimit.decorators import ratelimit

from newsletter import composing, languages, privacy, subscriptions
from newsletter.forms import PreferencesForm, SubscribeForm
from newsletter.models import EducationPiece, Issue, Subscriber
from newsletter.tokens import ExpiredToken, InvalidToken, Purpose, make_token, read_token
from newsletter.views.clients import (
    client_network,
    origin_of,
    signup_rate_per_address,
    signup_rate_per_ip,
    submitted_address,
)


def page_language() -> str:
    """The language of the page being answered (its address decides: /es/... is
    Spanish)."""
    return translation.get_language() or settings.LANGUAGE_CODE


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    # The education in the page's language: /es/ shows the Spanish pieces.
    pieces = EducationPiece.objects.filter(
        home_position__isnull=False, language=page_language()
    ).order_by("home_position")
    return render(
        request,
        "newsletter/home.html",
        {"form": SubscribeForm(), "sections": [composing.piece_section(p) for p in pieces]},
    )


@require_safe
def privacy_page(request: HttpRequest) -> HttpResponse:
    """The privacy page: what is kept, why, for how long, and the reader's rights, with
    the retention figures this deployment actually applies."""
    return render(
        request,
        "newsletter/privacy.html",
        {
            "pending_days": settings.NEWSLETTER_PENDING_DAYS,
            "consent_detail_days": settings.NEWSLETTER_CONSENT_DETAIL_DAYS,
            "confirm_days": settings.NEWSLETTER_CONFIRM_DAYS,
            "tracking": settings.NEWSLETTER_TRACKING,
        },
    )


@require_safe
def archive(request: HttpRequest) -> HttpResponse:
    # Each language's archive lists the issues sent in that language only.
    issues = Issue.objects.filter(status=Issue.Status.SENT, language=page_language()).order_by(
        "-sent_at"
    )
    return render(request, "newsletter/archive.html", {"issues": issues, "form": SubscribeForm()})


@require_safe
def archive_issue(request: HttpRequest, slug: str) -> HttpResponse:
    # Drafts, scheduled and unfinished sends are not public: 404, like any unknown slug.
    issue = get_object_or_404(Issue, slug=slug, status=Issue.Status.SENT)
    if issue.language != page_language():
        # An issue is read under its own language's prefix.
        return redirect(composing.archive_path(issue))
    # The language switch leads to each other language's archive: an issue exists in
    # one language only.
    request.language_links = languages.archive_in_each_language()  # type: ignore[attr-defined]
    return render(
        request,
        "newsletter/archive_issue.html",
        {
            "issue": issue,
            "intro_html": composing.markdown_to_html(issue.intro),
            "sections": composing.issue_sections(issue),
            "form": SubscribeForm(),
        },
    )


class ArchiveFeed(Feed):
    """The archive as an Atom feed, one per language (/newsletter/archive/feed/,
    /es/newsletter/archive/feed/), each with the issues sent in that language."""

    title = "Advances"
    description = _("Past issues of Advances, the cancer center's patient-education newsletter.")
    feed_type = Atom1Feed
    subtitle = description

    def link(self) -> str:
        return reverse("newsletter:archive")

    def items(self) -> QuerySet[Issue]:
        return Issue.objects.filter(status=Issue.Status.SENT, language=page_language()).order_by(
            "-sent_at"
        )[:20]

    def item_title(self, item: Issue) -> str:
        return item.subject

    def item_description(self, item: Issue) -> str:
        return item.preheader

    def item_link(self, item: Issue) -> str:
        return reverse("newsletter:archive_issue", args=[item.slug])

    def item_pubdate(self, item: Issue) -> datetime | None:
        return item.sent_at

    def item_updateddate(self, item: Issue) -> datetime | None:
        return item.sent_at


@require_http_methods(["GET", "HEAD", "POST"])
@ratelimit(key=client_network, rate=signup_rate_per_ip, method="POST")
@ratelimit(key=submitted_address, rate=signup_rate_per_address, method="POST")
def subscribe(request: HttpRequest) -> HttpResponse:
    form = SubscribeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            if not form.cleaned_data["website"]:
                subscriptions.subscribe(
                    email=form.cleaned_data["email"],
                    first_name=form.cleaned_data["first_name"],
                    topics=form.cleaned_data["topics"],
                    # Signed up on a Spanish page: a Spanish reader (editable later).
                    language=page_language(),
                    source=subscriptions.WEBSITE_SOURCE,
                    origin=origin_of(request),
                )
            # Rule 4: new, pending, active, unsubscribed, or a bot: the same answer.
            return redirect("newsletter:check_inbox")
        return render(request, "newsletter/subscribe.html", {"form": form}, status=400)
    return render(request, "newsletter/subscribe.html", {"form": form})


@require_safe
def check_inbox(request: HttpRequest) -> HttpResponse:
    return render(request, "newsletter/check_inbox.html")


def invalid_link(request: HttpRequest) -> HttpResponse:
    return render(request, "newsletter/invalid_link.html", status=400)


@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    # GET only shows a button: mail security scanners fetch every link in a message,
    # and a fetch must not subscribe anyone.
    try:
        subscriber = read_token(
            token, Purpose.CONFIRM, max_age=timedelta(days=settings.NEWSLETTER_CONFIRM_DAYS)
        )
    except ExpiredToken as expired:
        if request.method == "POST" and request.POST.get("action") == "resend":
            subscriptions.resend_confirmation(subscriber=expired.subscriber)
            return redirect("newsletter:check_inbox")
        return render(
            request,
            "newsletter/confirm_expired.html",
            {"confirm_days": settings.NEWSLETTER_CONFIRM_DAYS},
            status=410,
        )
    except InvalidToken:
        return invalid_link(request)
    if request.method in ("GET", "HEAD"):
        return render(
            request,
            "newsletter/confirm.html",
            {"wording": subscriptions.CONFIRM_WORDING, "subscriber": subscriber},
        )
    try:
        subscriptions.confirm_subscription(subscriber=subscriber, origin=origin_of(request))
    except subscriptions.NotPending:
        return render(request, "newsletter/confirm_not_pending.html", status=409)
    return render(
        request,
        "newsletter/confirmed.html",
        {
            "preferences_url": reverse(
                "newsletter:preferences", args=[make_token(subscriber, Purpose.PREFERENCES)]
            )
        },
    )


# RFC 8058 one-click unsubscribe: mail providers POST `List-Unsubscribe=One-Click`
# with no cookie and no CSRF token, so this view is exempt from CSRF. That is safe
# because the signed, subscriber-specific token in the URL is the authorisation, and
# the only thing a forged request could do is what the token's owner asked for.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = read_token(token, Purpose.UNSUBSCRIBE)
    except (InvalidToken, ExpiredToken):
        return invalid_link(request)
    if request.method in ("GET", "HEAD"):
        return render(request, "newsletter/unsubscribe.html", {"subscriber": subscriber})
    subscriptions.unsubscribe(subscriber=subscriber, origin=origin_of(request))
    # 200 with a page, not a redirect: one-click clients expect a plain answer.
    return render(
        request,
        "newsletter/unsubscribed.html",
        {"subscriber": subscriber, "form": SubscribeForm()},
    )


@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = read_token(token, Purpose.PREFERENCES)
    except (InvalidToken, ExpiredToken):
        return invalid_link(request)
    context: dict[str, object] = {
        "subscriber": subscriber,
        "token": token,
        "unsubscribe_url": reverse(
            "newsletter:unsubscribe", args=[make_token(subscriber, Purpose.UNSUBSCRIBE)]
        ),
    }
    if subscriber.status not in (Subscriber.Status.PENDING, Subscriber.Status.ACTIVE):
        return render(request, "newsletter/preferences_inactive.html", context)
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            subscriptions.update_preferences(
                subscriber=subscriber,
                first_name=form.cleaned_data["first_name"],
                topics=form.cleaned_data["topics"],
                language=form.cleaned_data["language"],
                origin=origin_of(request),
            )
            return render(
                request, "newsletter/preferences.html", {**context, "form": form, "saved": True}
            )
        return render(request, "newsletter/preferences.html", {**context, "form": form}, status=400)
    form = PreferencesForm(
        initial={
            "first_name": subscriber.first_name,
            "topics": list(subscriber.topics.all()),
            "language": subscriber.language,
        }
    )
    return render(request, "newsletter/preferences.html", {**context, "form": form})


# Data rights, from the preferences page. The signed preferences link is the
# authorisation, as for the rest of that page; the data itself only ever goes to the
# subscriber's own address, because a link can be forwarded.


@require_http_methods(["POST"])
def request_my_data(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = read_token(token, Purpose.PREFERENCES)
    except (InvalidToken, ExpiredToken):
        return invalid_link(request)
    queued = privacy.request_data_export(subscriber=subscriber)
    return render(
        request,
        "newsletter/data_export_requested.html",
        {
            "queued": queued,
            "wait_minutes": settings.NEWSLETTER_EXPORT_MINUTES,
            "preferences_url": reverse("newsletter:preferences", args=[token]),
        },
        status=200 if queued else 429,
    )


@require_http_methods(["GET", "HEAD", "POST"])
def erase_my_data(request: HttpRequest, token: str) -> HttpResponse:
    # GET only asks: a link scanner fetching the page must not erase anyone.
    try:
        subscriber = read_token(token, Purpose.PREFERENCES)
    except (InvalidToken, ExpiredToken):
        return invalid_link(request)
    if request.method in ("GET", "HEAD"):
        return render(
            request,
            "newsletter/erase_confirm.html",
            {
                "subscriber": subscriber,
                "preferences_url": reverse("newsletter:preferences", args=[token]),
            },
        )
    try:
        privacy.erase_subscriber(subscriber_id=subscriber.pk, source="preferences page")
    except privacy.NothingToErase:
        return invalid_link(request)
    return render(request, "newsletter/erased.html")
