"""The embed code in a real browser: pasted into a plain HTML page that another local
origin (another port) serves, as the center's website would.

With JavaScript the reader subscribes in place and confirms from the .eml outbox; a
page whose origin is not on NEWSLETTER_EMBED_ORIGINS signs nobody up; without
JavaScript the form ends on Advances' thank-you page; the host page stays axe clean and
works under a strict Content-Security-Policy of its own.
"""

import email
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation import gettext
from playwright.sync_api import Browser, Page, expect

from newsletter import embed
from newsletter.models import ConsentEvent, Subscriber
from tests.conftest import URL_RE, path_of
from tests.test_browser import (  # noqa: F401 (fixtures)
    DESKTOP,
    axe_violations,
    browser,
    describe,
    heading,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SOURCE = "second-opinion-page"
PAGE_PATH = "/second-opinion/"
SUCCESS = (
    "Thank you. If that address can receive Advances, we have just sent it an email: "
    "open it and choose “Confirm my subscription”."
)


class HostSite:
    """A plain web server on another port of loopback: the center's website. It serves
    one HTML page, with whatever headers (a CSP) the test gives it."""

    def __init__(self) -> None:
        self.body = b""
        self.headers: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != PAGE_PATH:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                for name, value in site.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(site.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def page_url(self) -> str:
        return self.origin + PAGE_PATH

    def publish(self, code: str, *, lang: str = "en", csp: str = "") -> None:
        """The page as an editor would make it: their own markup, the code pasted in."""
        self.headers = {"Content-Security-Policy": csp} if csp else {}
        self.body = f"""<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Getting a second opinion</title></head>
<body>
<main>
<h1>Getting a breast cancer second opinion</h1>
<p>Another specialist can review your diagnosis and treatment plan.</p>
<h2>Stay informed</h2>
{code}
</main>
</body>
</html>""".encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host_site() -> Iterator[HostSite]:
    site = HostSite()
    yield site
    site.close()


@pytest.fixture
def other_site() -> Iterator[HostSite]:
    """A second origin, never on the allow-list."""
    site = HostSite()
    yield site
    site.close()


@pytest.fixture
def outbox(settings, tmp_path: Path) -> Path:
    """The embedded default's .eml outbox, as a README user reads it."""
    settings.EMAIL_BACKEND = "newsletter.outbox.OutboxEmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "outbox")
    return tmp_path / "outbox"


@pytest.fixture
def advances(settings, live_server, host_site: HostSite, main_topic, outbox: Path) -> str:
    """Advances on the live server, with the host site's origin (only) allowed."""
    settings.SITE_URL = live_server.url
    settings.NEWSLETTER_EMBED_ORIGINS = [host_site.origin]
    return live_server.url


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:  # noqa: F811
    contexts = []

    def open_(*, javascript: bool = True) -> Page:
        context = browser.new_context(viewport=DESKTOP, java_script_enabled=javascript)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


def messages_in(outbox: Path) -> list[Message]:
    if not outbox.exists():
        return []
    return [email.message_from_bytes(path.read_bytes()) for path in sorted(outbox.glob("*.eml"))]


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def signup_form(page: Page):
    return page.locator("form.advances-signup")


def fill_and_submit(page: Page, address: str) -> None:
    form = signup_form(page)
    form.get_by_label("Email address").fill(address)
    form.get_by_role("button", name="Subscribe").click()


def test_reader_subscribes_in_place_on_an_allowed_page_and_confirms_from_the_outbox(
    advances, host_site, open_page, outbox
):
    host_site.publish(embed.snippet(source=SOURCE))
    page = open_page()
    page.goto(host_site.page_url)
    assert not (violations := axe_violations(page)), describe(violations)

    fill_and_submit(page, "Ann@Example.com")

    message = signup_form(page).get_by_role("status")
    expect(message).to_have_text(SUCCESS)
    expect(message).to_have_attribute("aria-live", "polite")
    expect(signup_form(page)).to_have_class("advances-signup advances-signup--done")
    assert page.url == host_site.page_url  # in place: the reader never left the page
    expect(signup_form(page).get_by_label("Email address")).to_have_value("")
    assert not (violations := axe_violations(page)), describe(violations)
    ann = Subscriber.objects.get(email="ann@example.com")
    assert (ann.status, ann.source, ann.language) == ("pending", SOURCE, "en")
    signup = ann.consent_events.get(kind=ConsentEvent.Kind.SIGNUP)
    assert signup.source == f"embed {SOURCE} on {host_site.origin}"
    assert "Chrome" in signup.user_agent
    [confirmation] = messages_in(outbox)
    assert confirmation["To"] == "ann@example.com"

    link = next(url for url in URL_RE.findall(text_of(confirmation)) if "/confirm/" in url)
    page.goto(advances + path_of(link))
    page.get_by_role("button", name="Confirm my subscription").click()

    expect(heading(page)).to_have_text("You're subscribed")
    ann.refresh_from_db()
    assert ann.status == Subscriber.Status.ACTIVE


def test_errors_show_in_place_and_mark_the_field(advances, host_site, open_page):
    host_site.publish(embed.snippet(source=SOURCE))
    page = open_page()
    page.goto(host_site.page_url)
    # The browser's own check of type=email stops "not-an-address"; a space does not.
    page.evaluate("document.querySelector('form.advances-signup').noValidate = true")

    fill_and_submit(page, "ann@example")

    message = signup_form(page).get_by_role("status")
    expect(message).to_contain_text("Please check the form")
    field = signup_form(page).get_by_label("Email address")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    assert not (violations := axe_violations(page)), describe(violations)
    assert not Subscriber.objects.exists()


def test_a_spanish_page_gets_its_answer_in_spanish_and_the_reader_spanish_email(
    advances, host_site, open_page, outbox
):
    host_site.publish(embed.snippet(source=SOURCE), lang="es-MX")
    page = open_page()
    page.goto(host_site.page_url)

    form = signup_form(page)
    form.locator("input[type=email]").fill("ana@example.com")
    form.locator("[type=submit]").click()

    with translation.override("es"):
        expected = gettext(
            "Thank you. If that address can receive Advances, we have just sent it an "
            "email: open it and choose “Confirm my subscription”."
        )
    message = signup_form(page).get_by_role("status")
    expect(message).to_have_text(expected)
    expect(message).to_have_attribute("lang", "es")
    ana = Subscriber.objects.get(email="ana@example.com")
    assert (ana.language, ana.source) == ("es", SOURCE)
    assert len(messages_in(outbox)) == 1


def test_code_that_follows_the_page_shows_its_words_in_the_pages_language(
    advances, host_site, open_page
):
    code = embed.snippet(source=SOURCE)
    with translation.override("es"):
        email_label = gettext("Email address")
    # Whatever the catalogue holds today, the script must show the page's language's
    # words: give the button a Spanish word of the test's own to prove it.
    code = code.replace('data-advances-es="Subscribe"', 'data-advances-es="Suscribirme"')
    host_site.publish(code, lang="es")
    page = open_page()
    page.goto(host_site.page_url)

    form = signup_form(page)
    expect(form.locator("[type=submit]")).to_have_text("Suscribirme")
    expect(form.locator("label[for$=-email]")).to_have_text(email_label)
    assert not (violations := axe_violations(page)), describe(violations)


def test_a_snippet_made_in_spanish_answers_in_spanish_whatever_the_page_says(
    advances, host_site, open_page
):
    host_site.publish(embed.snippet(source=SOURCE, language="es"), lang="en")
    page = open_page()
    page.goto(host_site.page_url)

    form = signup_form(page)
    with translation.override("es"):
        button = gettext("Subscribe")
    expect(form.locator("[type=submit]")).to_have_text(button)  # the script changes nothing
    form.locator("input[type=email]").fill("ana@example.com")
    form.locator("[type=submit]").click()

    expect(form.get_by_role("status")).to_have_attribute("lang", "es")
    assert Subscriber.objects.get(email="ana@example.com").language == "es"


def test_a_page_on_an_origin_not_on_the_list_cannot_subscribe_anyone(
    advances, other_site, open_page, outbox
):
    other_site.publish(embed.snippet(source=SOURCE))
    page = open_page()
    page.goto(other_site.page_url)

    fill_and_submit(page, "ann@example.com")

    # The browser withholds Advances' 403 from the page (no CORS for that origin), so
    # the script can only say it could not reach Advances.
    with translation.override("en"):
        offline = str(embed.OFFLINE_MESSAGE)
    expect(signup_form(page).get_by_role("status")).to_have_text(offline)
    expect(signup_form(page)).to_have_class("advances-signup advances-signup--error")
    assert not Subscriber.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert messages_in(outbox) == []


def test_without_javascript_the_form_ends_on_the_thank_you_page_with_a_link_back(
    advances, host_site, open_page, outbox
):
    host_site.publish(embed.snippet(source=SOURCE, page=host_site.page_url))
    page = open_page(javascript=False)
    page.goto(host_site.page_url)

    with page.expect_navigation():
        fill_and_submit(page, "bob@example.com")

    assert page.url.startswith(advances + "/newsletter/embed/thanks/")
    expect(heading(page)).to_have_text("Check your inbox")
    checker = open_page()  # axe is a script: it runs in a page that runs scripts
    checker.goto(page.url)
    assert not (violations := axe_violations(checker)), describe(violations)
    bob = Subscriber.objects.get(email="bob@example.com")
    assert (bob.status, bob.source) == ("pending", SOURCE)
    assert len(messages_in(outbox)) == 1

    page.get_by_role("link", name="Back to the page you came from").click()

    assert page.url == host_site.page_url


def test_without_javascript_a_page_not_on_the_list_is_refused_and_gets_no_link_back(
    advances, other_site, open_page, outbox
):
    other_site.publish(embed.snippet(source=SOURCE, page=other_site.page_url))
    page = open_page(javascript=False)
    page.goto(other_site.page_url)

    with page.expect_navigation():
        fill_and_submit(page, "bob@example.com")

    expect(heading(page)).to_have_text("This signup form can't be used here")
    assert other_site.origin not in page.content()
    assert not Subscriber.objects.exists()
    assert messages_in(outbox) == []


def strict_csp(advances_origin: str, *, connect: bool = True) -> str:
    """What docs/embed-and-api.md tells the center's web team to send: nothing allowed
    by default, Advances' origin for the script, its fetch and the plain form."""
    connect_src = advances_origin if connect else "'none'"
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {advances_origin}",
            f"connect-src {connect_src}",
            f"form-action {advances_origin}",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def test_the_embed_works_under_a_strict_csp_on_the_host_page(advances, host_site, open_page):
    host_site.publish(embed.snippet(source=SOURCE), csp=strict_csp(advances))
    page = open_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(host_site.page_url)

    fill_and_submit(page, "ann@example.com")

    expect(signup_form(page).get_by_role("status")).to_have_text(SUCCESS)
    assert violations == []
    assert Subscriber.objects.get(email="ann@example.com").source == SOURCE


def test_a_host_csp_without_advances_in_connect_src_blocks_the_signup(
    advances, host_site, open_page
):
    """The negative of the documented policy: connect-src is needed, not decoration."""
    host_site.publish(embed.snippet(source=SOURCE), csp=strict_csp(advances, connect=False))
    page = open_page()
    page.goto(host_site.page_url)

    fill_and_submit(page, "ann@example.com")

    with translation.override("en"):
        offline = str(embed.OFFLINE_MESSAGE)
    expect(signup_form(page).get_by_role("status")).to_have_text(offline)
    assert not Subscriber.objects.exists()
