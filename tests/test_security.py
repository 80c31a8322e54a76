"""Security headers, cookies and admin login throttling, as a browser receives them."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from newsletter.models import Subscriber
from newsletter.tokens import Purpose, make_token
from tests.factories import EducationPieceFactory, IssueFactory, SubscriberFactory, UserFactory

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as HttpResponse

pytestmark = pytest.mark.django_db

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

STRICT_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:", "https:"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
}


def policy_of(response: HttpResponse) -> dict[str, list[str]]:
    directives = (part.split() for part in response["Content-Security-Policy"].split(";"))
    return {name: values for name, *values in directives}


class InlineCode(HTMLParser):
    """Collects what a strict Content-Security-Policy would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{name}= on <{tag}>" for name in names if name == "style"]
        self.found += [f"{name}= on <{tag}>" for name in names if name.startswith("on")]
        self.found += [
            f"javascript: URL on <{tag}>"
            for _, value in attrs
            if value and value.strip().lower().startswith("javascript:")
        ]


def inline_code_in(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


# --- Every public page, in each of its states --------------------------------------------


def subscriber(status: str) -> Subscriber:
    return SubscriberFactory.create(status=status)


def link(name: str, reader: Subscriber, purpose: Purpose) -> str:
    return reverse(f"newsletter:{name}", args=[make_token(reader, purpose)])


def sent_issue_page(client: Client) -> HttpResponse:
    issue = IssueFactory(
        status="sent",
        sent_at=timezone.now(),
        with_pieces=[EducationPieceFactory(body="Ask **your doctor**.\n\n| a | b |\n|---|---|")],
    )
    return client.get(reverse("newsletter:archive_issue", args=[issue.slug]))


def rate_limited_page(client: Client, settings) -> HttpResponse:
    settings.NEWSLETTER_SIGNUP_RATE_IP = "0/h"
    return client.post(reverse("newsletter:subscribe"), {"email": "ann@example.com"})


PUBLIC_PAGES: dict[str, Callable[..., HttpResponse]] = {
    "home": lambda client, settings: client.get("/"),
    "subscribe": lambda client, settings: client.get(reverse("newsletter:subscribe")),
    "subscribe with errors": lambda client, settings: client.post(
        reverse("newsletter:subscribe"), {"email": "not an address"}
    ),
    "check your inbox": lambda client, settings: client.get(reverse("newsletter:check_inbox")),
    "archive": lambda client, settings: client.get(reverse("newsletter:archive")),
    "archive issue": lambda client, settings: sent_issue_page(client),
    "confirm": lambda client, settings: client.get(
        link("confirm", subscriber("pending"), Purpose.CONFIRM)
    ),
    "confirmed": lambda client, settings: client.post(
        link("confirm", subscriber("pending"), Purpose.CONFIRM)
    ),
    "confirm, not pending": lambda client, settings: client.post(
        link("confirm", subscriber("unsubscribed"), Purpose.CONFIRM)
    ),
    "unsubscribe": lambda client, settings: client.get(
        link("unsubscribe", subscriber("active"), Purpose.UNSUBSCRIBE)
    ),
    "unsubscribed": lambda client, settings: client.post(
        link("unsubscribe", subscriber("active"), Purpose.UNSUBSCRIBE)
    ),
    "preferences": lambda client, settings: client.get(
        link("preferences", subscriber("active"), Purpose.PREFERENCES)
    ),
    "preferences, inactive": lambda client, settings: client.get(
        link("preferences", subscriber("unsubscribed"), Purpose.PREFERENCES)
    ),
    "invalid link": lambda client, settings: client.get("/newsletter/confirm/forged/"),
    "not found": lambda client, settings: client.get("/no-such-page/"),
    "rate limited": rate_limited_page,
    "csrf failure": lambda client, settings: Client(enforce_csrf_checks=True).post(
        reverse("newsletter:subscribe"), {"email": "ann@example.com"}
    ),
}


@pytest.fixture(params=list(PUBLIC_PAGES))
def public_page(request, client, settings, main_topic) -> HttpResponse:
    response = PUBLIC_PAGES[request.param](client, settings)
    assert response["Content-Type"].startswith("text/html")
    return response


def test_every_public_page_sends_the_strict_content_security_policy(public_page):
    assert policy_of(public_page) == STRICT_POLICY


def test_no_public_page_has_inline_script_or_style(public_page):
    assert inline_code_in(public_page.content.decode()) == []


def test_the_confirm_expired_page_sends_the_strict_policy_too(client, settings):
    settings.NEWSLETTER_CONFIRM_DAYS = 0
    response = client.get(link("confirm", subscriber("pending"), Purpose.CONFIRM))
    assert response.status_code == 410
    assert policy_of(response) == STRICT_POLICY
    assert inline_code_in(response.content.decode()) == []


@pytest.mark.parametrize(
    "template",
    sorted(
        str(path.relative_to(TEMPLATES_DIR))
        for path in TEMPLATES_DIR.rglob("*.html")
        if "emails" not in path.parts  # emails need inline styles; never served as pages
    ),
)
def test_no_page_template_has_inline_script_or_style(template):
    source = (TEMPLATES_DIR / template).read_text()
    # Template tags could hide an attribute from the HTML parser; look at the text too.
    assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=", source)
    assert inline_code_in(source) == []


# --- The admin: the same policy, widened only where the email is previewed ----------------


@pytest.fixture
def staff_client(client) -> Client:
    client.force_login(UserFactory(is_superuser=True))
    return client


@pytest.fixture
def issue(main_topic):
    return IssueFactory(
        subject="Second opinions",
        with_pieces=[EducationPieceFactory(title="Why it matters", body="It can change a plan.")],
    )


@pytest.mark.parametrize(
    "name",
    ["index", "newsletter_issue_change", "newsletter_issue_progress", "newsletter_issue_send"],
)
def test_admin_pages_keep_the_strict_policy(staff_client, issue, name):
    args = [] if name == "index" else [issue.pk]
    response = staff_client.get(reverse(f"admin:{name}", args=args))
    assert response.status_code == 200
    assert policy_of(response) == STRICT_POLICY


def test_admin_login_page_keeps_the_strict_policy(client):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 200
    assert policy_of(response) == STRICT_POLICY


def test_issue_preview_lets_the_email_styles_render_and_nothing_more(staff_client, issue):
    response = staff_client.get(reverse("admin:newsletter_issue_preview", args=[issue.pk]))

    assert response.status_code == 200
    # The srcdoc document inherits this policy: its <style> block and style attributes
    # need 'unsafe-inline', its images may come from any HTTPS host, as in a mail client.
    assert policy_of(response) == {
        **STRICT_POLICY,
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],
    }
    content = response.content.decode()
    iframe = re.search(r"<iframe\b[^>]*>", content)
    assert iframe
    # A bare sandbox: no scripts, an opaque origin, no forms, no top navigation.
    assert re.search(r"\ssandbox[\s>]", iframe.group(0))
    assert "&lt;style&gt;" in iframe.group(0)
    assert "Why it matters" in iframe.group(0)


# --- Headers and cookies -------------------------------------------------------------------


def test_https_responses_carry_hsts_and_the_other_security_headers(client):
    response = client.get("/", secure=True)

    assert response["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains; preload")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    permissions = dict(
        item.strip().split("=") for item in response["Permissions-Policy"].split(",")
    )
    assert permissions["camera"] == permissions["browsing-topics"] == "()"


def test_admin_cookies_are_secure_http_only_and_last_a_working_day(client):
    user = UserFactory(username="editor")

    login_page = client.get(reverse("admin:login"))
    login = client.post(
        reverse("admin:login"), {"username": "editor", "password": "a-long-test-password"}
    )

    assert login.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    csrf = login_page.cookies["csrftoken"]
    assert (csrf["secure"], csrf["httponly"], csrf["samesite"]) == (True, True, "Lax")
    session = login.cookies["sessionid"]
    assert (session["secure"], session["httponly"], session["samesite"]) == (True, True, "Lax")
    assert session["max-age"] == 8 * 60 * 60


# --- Admin login throttling ----------------------------------------------------------------


def log_in(client: Client, username: str, password: str, ip: str) -> HttpResponse:
    return client.post(
        reverse("admin:login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_admin_login_is_refused_after_too_many_failures_from_one_ip(client, settings):
    settings.ADMIN_LOGIN_RATE = "3/15m"
    UserFactory(username="editor")

    failures = [log_in(client, f"guess{n}", "wrong", "203.0.113.9") for n in range(3)]
    refused = log_in(client, "editor", "a-long-test-password", "203.0.113.9")

    assert [response.status_code for response in failures] == [200, 200, 200]
    assert refused.status_code == 429
    assert b"Too many attempts" in refused.content
    assert "_auth_user_id" not in client.session  # even the right password is not tried
    assert log_in(client, "editor", "a-long-test-password", "203.0.113.10").status_code == 302


def test_admin_login_is_refused_after_too_many_failures_for_one_username(client, settings):
    settings.ADMIN_LOGIN_RATE = "3/15m"
    UserFactory(username="editor")
    UserFactory(username="publisher")

    failures = [log_in(client, "editor", "wrong", f"203.0.113.{n}") for n in range(3)]

    assert [response.status_code for response in failures] == [200, 200, 200]
    assert log_in(client, "Editor", "a-long-test-password", "198.51.100.1").status_code == 429
    assert log_in(client, "publisher", "a-long-test-password", "198.51.100.1").status_code == 302


def test_successful_admin_logins_do_not_count_as_failures(client, settings):
    settings.ADMIN_LOGIN_RATE = "2/15m"
    UserFactory(username="editor")

    statuses = [
        log_in(client, "editor", "a-long-test-password", "203.0.113.9").status_code
        for _ in range(4)
    ]

    assert statuses == [302, 302, 302, 302]


def test_the_login_form_still_shows_while_logins_are_throttled(client, settings):
    settings.ADMIN_LOGIN_RATE = "1/15m"
    log_in(client, "editor", "wrong", "203.0.113.9")
    assert log_in(client, "editor", "wrong", "203.0.113.9").status_code == 429
    assert client.get(reverse("admin:login"), REMOTE_ADDR="203.0.113.9").status_code == 200
