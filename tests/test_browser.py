"""Advances in a real browser (Debian's Chromium, driven by Playwright).

The reader's whole journey through the live server, RFC 8058 one-click unsubscribe over
real HTTP, and every public page checked with axe-core against WCAG 2.2 A/AA and at a
375 px mobile width. Needs /usr/bin/chromium (`make browser-deps`): without it these
tests are skipped locally and fail under CI.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from django import db
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from newsletter.models import ConsentEvent, Subscriber, Topic
from newsletter.tokens import Purpose, make_token
from tests.conftest import links_in, path_of
from tests.factories import EducationPieceFactory, IssueFactory

# Debian's Chromium; CHROMIUM names another build of it.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Keep the browser off the network: only the live server on loopback is visited.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
MOBILE: ViewportSize = {"width": 375, "height": 800}
LONG_ADDRESS = "margaret.fitzgeraldoconnor.family@patients.examplehospital.org"
SHOTS_DIR = Path(os.environ.get("ADVANCES_SHOTS_DIR", "/tmp/advances-shots"))  # noqa: S108

pytestmark = [
    pytest.mark.browser,
    # Serialized rollback restores the migrations' data (the main topic, the groups)
    # that the live server's flush between tests would otherwise take away.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Chromium for one test.

    Playwright's sync API keeps an asyncio event loop running in this thread while it
    is open. Django then refuses ORM calls from this thread unless allowed, and hands
    out other database connections than the ones pytest-django set up (they are
    context-local), so the browser lives only inside the test: the database set-up and
    the flush after it run without the loop, and the connections opened inside are
    closed before it stops.
    """
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium "
            "(as root), or run `apt-get install -y chromium`"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            db.connections.close_all()
            chromium.close()


@pytest.fixture
def open_page(browser: Browser, live_server) -> Iterator[Callable[..., Page]]:
    """Opens a page on the live server in a fresh browser context (no cookies), at the
    desktop size or as a 375 px wide phone."""
    contexts = []

    def open_(*, mobile: bool = False) -> Page:
        context = browser.new_context(
            base_url=live_server.url,
            viewport=MOBILE if mobile else DESKTOP,
            is_mobile=mobile,
            has_touch=mobile,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


def heading(page: Page):
    return page.get_by_role("heading", level=1)


def path_in_email(message: mail.EmailMessage, fragment: str) -> str:
    return path_of(links_in(message, fragment)[0])


def test_reader_signs_up_confirms_changes_preferences_and_unsubscribes_in_a_browser(
    open_page, main_topic
):
    breast = Topic.objects.create(name="Breast cancer", slug="breast-cancer", position=1)
    trials = Topic.objects.create(name="Clinical trials", slug="clinical-trials", position=2)
    page = open_page()

    page.goto("/")
    signup = page.locator("#signup")  # the full form, with every topic
    signup.get_by_label("Email address").fill("Ann@Example.com")
    signup.get_by_label("First name (optional)").fill("Ann")
    expect(signup.get_by_label("Advances", exact=True)).to_be_checked()  # the default topic
    signup.get_by_label("Breast cancer").check()
    signup.get_by_role("button", name="Subscribe", exact=True).click()

    expect(heading(page)).to_have_text("Check your inbox")
    ann = Subscriber.objects.get(email="ann@example.com")
    assert (ann.status, ann.first_name) == (Subscriber.Status.PENDING, "Ann")
    assert set(ann.topics.all()) == {main_topic, breast}
    signup = ann.consent_events.get(kind=ConsentEvent.Kind.SIGNUP)
    assert signup.ip_address == "127.0.0.1"
    assert "Chrome" in signup.user_agent
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ann@example.com"]

    page.goto(path_in_email(mail.outbox[0], "/newsletter/confirm/"))
    expect(heading(page)).to_have_text("Confirm your subscription")
    ann.refresh_from_db()
    assert ann.status == Subscriber.Status.PENDING  # opening the link is not consent
    page.get_by_role("button", name="Confirm my subscription").click()

    expect(heading(page)).to_have_text("You're subscribed")
    ann.refresh_from_db()
    assert ann.status == Subscriber.Status.ACTIVE
    assert ann.confirmed_at is not None
    assert mail.outbox[-1].subject == "Welcome to Advances"

    page.get_by_role("link", name="choose your topics").click()
    expect(heading(page)).to_have_text("Your Advances preferences")
    expect(page.get_by_label("First name", exact=True)).to_have_value("Ann")
    page.get_by_label("First name", exact=True).fill("Annie")
    page.get_by_label("Advances", exact=True).uncheck()
    page.get_by_label("Clinical trials").check()
    page.get_by_role("button", name="Save my preferences").click()

    expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
    ann.refresh_from_db()
    assert ann.first_name == "Annie"
    assert set(ann.topics.all()) == {breast, trials}
    assert ann.status == Subscriber.Status.ACTIVE

    page.get_by_role("button", name="Unsubscribe from all").click()

    expect(heading(page)).to_have_text("You're unsubscribed")
    ann.refresh_from_db()
    assert ann.status == Subscriber.Status.UNSUBSCRIBED
    assert ann.unsubscribed_at is not None
    assert list(ann.consent_events.values_list("kind", flat=True)) == [
        "signup",
        "confirm",
        "preferences",
        "unsubscribe",
    ]


def test_one_click_unsubscribe_over_real_http_needs_no_cookie_or_csrf_token(
    live_server, subscriber_factory
):
    subscriber = subscriber_factory(email="ann@example.com")
    url = live_server.url + reverse(
        "newsletter:unsubscribe", args=[make_token(subscriber, Purpose.UNSUBSCRIBE)]
    )

    def one_click() -> requests.Response:
        # What a mail provider sends (RFC 8058): no cookie, no CSRF token, this body.
        return requests.post(
            url,
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
            allow_redirects=False,
        )

    response = one_click()

    assert response.status_code == 200
    assert "You're unsubscribed" in response.text
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    event = subscriber.consent_events.get(kind=ConsentEvent.Kind.UNSUBSCRIBE)
    assert event.ip_address == "127.0.0.1"
    # Mail providers repeat requests: a second one-click is answered the same way.
    assert one_click().status_code == 200
    # The exemption is this view's alone: the signup form still needs its CSRF cookie.
    refused = requests.post(
        live_server.url + reverse("newsletter:subscribe"),
        data={"email": "bob@example.com"},
        timeout=10,
        allow_redirects=False,
    )
    assert refused.status_code == 403
    assert not Subscriber.objects.filter(email="bob@example.com").exists()


# --- Accessibility and layout of every public page ------------------------------------


def axe_violations(page: Page) -> list[dict]:
    return Axe().run(page, options=AXE_OPTIONS).response["violations"]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"  {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.extend(
            f"    at {' '.join(node['target'])}: {node['html']}" for node in violation["nodes"]
        )
    return "\n".join(lines)


def press(page: Page, button: str) -> None:
    """Press a form's button and wait for the page it leads to (which may have the same
    heading as the form's page)."""
    with page.expect_navigation():
        page.get_by_role("button", name=button, exact=True).click()


def submit_signup(page: Page, email: str) -> None:
    page.get_by_label("Email address").fill(email)
    press(page, "Subscribe")


@pytest.mark.parametrize("mobile", [False, True], ids=["desktop", "mobile"])
def test_every_public_page_has_no_wcag_violations_and_fits_a_phone(
    open_page, settings, subscriber_factory, mobile
):
    """Each public page is reached as a reader would reach it, then checked with
    axe-core (WCAG 2.0, 2.1 and 2.2, A and AA) and for horizontal scrolling."""
    Status = Subscriber.Status
    pending = subscriber_factory(email="pending@example.com", status=Status.PENDING)
    stale = subscriber_factory(email="stale@example.com", status=Status.PENDING)
    # A long address (they exist) must wrap, not widen the page on a phone.
    active = subscriber_factory(email=LONG_ADDRESS, first_name="Ann")
    leaving = subscriber_factory(email="leaving@example.com")
    gone = subscriber_factory(email=f"gone.{LONG_ADDRESS}", status=Status.UNSUBSCRIBED)
    piece = EducationPieceFactory(
        title="What another specialist can change",
        body="- **Another radiologist** can review your imaging.\n- Call [us](tel:+16082666400).",
        cta_label="Call (608) 266-6400",
        cta_url="tel:+16082666400",
        home_position=1,
    )
    sent_issue = IssueFactory(
        subject="Second opinions", status="sent", sent_at=timezone.now(), with_pieces=[piece]
    )

    def link(name: str, subscriber: Subscriber, purpose: Purpose) -> str:
        return reverse(f"newsletter:{name}", args=[make_token(subscriber, purpose)])

    def goto(path: str) -> Callable[[Page], None]:
        def reach(page: Page) -> None:
            page.goto(path)

        return reach

    def confirm(page: Page) -> None:
        page.goto(link("confirm", pending, Purpose.CONFIRM))
        press(page, "Confirm my subscription")

    def expired(page: Page) -> None:
        settings.NEWSLETTER_CONFIRM_DAYS = 0
        page.goto(link("confirm", stale, Purpose.CONFIRM))

    def not_pending(page: Page) -> None:
        settings.NEWSLETTER_CONFIRM_DAYS = 7
        page.goto(link("confirm", gone, Purpose.CONFIRM))
        press(page, "Confirm my subscription")

    def unsubscribe(page: Page) -> None:
        page.goto(link("unsubscribe", leaving, Purpose.UNSUBSCRIBE))
        press(page, "Unsubscribe")

    def save_preferences(page: Page) -> None:
        page.goto(link("preferences", active, Purpose.PREFERENCES))
        page.get_by_label("First name", exact=True).fill("Ann")
        press(page, "Save my preferences")
        expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")

    def preferences_without_topics(page: Page) -> None:
        page.goto(link("preferences", active, Purpose.PREFERENCES))
        page.get_by_label("Advances", exact=True).uncheck()
        press(page, "Save my preferences")
        expect(page.get_by_text("Choose at least one topic")).to_be_visible()

    def invalid_address(page: Page) -> None:
        page.goto("/newsletter/subscribe/")
        submit_signup(page, "not-an-address")
        expect(page.get_by_text("Enter a valid email address.")).to_be_visible()

    def topic_gone(page: Page) -> None:
        # An editor deletes a topic while the reader has the form open.
        doomed = Topic.objects.create(name="Clinical trials", slug="clinical-trials")
        page.goto("/newsletter/subscribe/")
        page.get_by_label("Clinical trials").check()
        doomed.delete()
        submit_signup(page, "ann@example.com")
        expect(page.locator("#topics-errors")).to_contain_text("not one of the available")

    def csrf_failure(page: Page) -> None:
        page.goto("/newsletter/subscribe/")
        page.context.clear_cookies()
        submit_signup(page, "ann@example.com")

    def rate_limited(page: Page) -> None:
        settings.NEWSLETTER_SIGNUP_RATE_IP = "1/h"
        page.goto("/")
        submit_signup(page, "first@example.com")
        page.goto("/")
        submit_signup(page, "second@example.com")

    confirm_pending = link("confirm", pending, Purpose.CONFIRM)
    unsubscribe_leaving = link("unsubscribe", leaving, Purpose.UNSUBSCRIBE)
    preferences_active = link("preferences", active, Purpose.PREFERENCES)
    preferences_gone = link("preferences", gone, Purpose.PREFERENCES)
    # (name, how a reader gets there, the page's <h1>)
    tour = [
        ("home", goto("/"), "Getting a breast cancer second opinion"),
        ("archive", goto("/newsletter/archive/"), "Past issues of Advances"),
        ("privacy", goto("/newsletter/privacy/"), "Advances and your privacy"),
        ("archive issue", goto(f"/newsletter/archive/{sent_issue.slug}/"), sent_issue.subject),
        ("subscribe", goto("/newsletter/subscribe/"), "Subscribe to Advances"),
        ("subscribe with errors", invalid_address, "Subscribe to Advances"),
        ("subscribe, topic gone", topic_gone, "Subscribe to Advances"),
        ("check your inbox", goto("/newsletter/subscribe/check-your-inbox/"), "Check your inbox"),
        ("confirm", goto(confirm_pending), "Confirm your subscription"),
        ("confirmed", confirm, "You're subscribed"),
        ("confirm expired", expired, "This confirmation link has expired"),
        ("confirm not pending", not_pending, "This confirmation link is no longer valid"),
        ("invalid link", goto("/newsletter/confirm/not-a-token/"), "This link doesn't work"),
        ("unsubscribe", goto(unsubscribe_leaving), "Unsubscribe from Advances"),
        ("unsubscribed", unsubscribe, "You're unsubscribed"),
        ("preferences", goto(preferences_active), "Your Advances preferences"),
        ("preferences saved", save_preferences, "Your Advances preferences"),
        ("preferences with errors", preferences_without_topics, "Your Advances preferences"),
        ("preferences, unsubscribed", goto(preferences_gone), "You're not subscribed"),
        ("not found", goto("/no-such-page/"), "Page not found"),
        ("csrf failure", csrf_failure, "Please try again"),
        ("rate limited", rate_limited, "Too many attempts"),
    ]
    screenshots = {"home", "preferences"}

    page = open_page(mobile=mobile)
    width = (MOBILE if mobile else DESKTOP)["width"]
    failures = []
    for name, reach, title in tour:
        reach(page)
        expect(heading(page), f"{name}: wrong page").to_have_text(title)
        if violations := axe_violations(page):
            failures.append(f"{name} ({page.url}):\n{describe(violations)}")
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            failures.append(f"{name} ({page.url}): {scroll_width} px wide at {width} px")
        if name in screenshots:
            SHOTS_DIR.mkdir(parents=True, exist_ok=True)
            shot = SHOTS_DIR / f"{name}-{'mobile' if mobile else 'desktop'}.png"
            page.screenshot(path=shot, full_page=True)

    assert not failures, "\n".join(failures)
    assert Subscriber.objects.get(email="pending@example.com").status == "active"
    assert Subscriber.objects.get(email="leaving@example.com").status == "unsubscribed"


# --- The signup on the first screen -----------------------------------------------------


@pytest.mark.parametrize(
    "viewport", [DESKTOP, {"width": 375, "height": 812}], ids=["1280x900", "375x812"]
)
def test_landing_page_signup_button_is_on_the_first_screen(open_page, viewport, main_topic):
    """A reader sees the signup without scrolling: the compact form's button lies
    wholly inside the first viewport, at a desktop's and a phone's size, and the page
    stays axe clean. Signing up through it gives the same answer as the full form."""
    for position in range(1, 4):  # the landing page as long as the demo's
        EducationPieceFactory(
            title=f"Piece {position}", body="A paragraph. " * 80, home_position=position
        )
    page = open_page(mobile=viewport["width"] < 600)
    page.set_viewport_size(viewport)
    page.goto("/")

    button = page.get_by_role("button", name="Sign up", exact=True)
    box = button.bounding_box()
    assert box is not None
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= viewport["height"], box
    assert box["x"] + box["width"] <= viewport["width"], box
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS_DIR / f"first-screen-{viewport['width']}.png")
    assert not (violations := axe_violations(page)), describe(violations)

    page.get_by_label("Your email").fill("Quick@Example.com")
    with page.expect_navigation():
        button.click()
    expect(heading(page)).to_have_text("Check your inbox")
    quick = Subscriber.objects.get(email="quick@example.com")
    assert quick.status == Subscriber.Status.PENDING
    assert list(quick.topics.all()) == [main_topic]


def test_every_public_page_links_to_the_signup_from_its_header(open_page):
    page = open_page()
    for path in ["/", "/newsletter/archive/", "/newsletter/privacy/", "/no-such-page/"]:
        page.goto(path)
        page.get_by_role("navigation").get_by_role("link", name="Subscribe").click()
        expect(heading(page)).to_have_text("Subscribe to Advances")


# --- Keyboard use: what axe-core cannot see ---------------------------------------------

# The focused element, its outline, and the colour the outline is drawn on: the first
# opaque background under a point in the outline, beside the element (outlines are drawn
# outside the element, so its own background does not count).
FOCUS_RING_JS = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const rect = el.getBoundingClientRect();
  const ring = parseFloat(style.outlineOffset) + parseFloat(style.outlineWidth) / 2;
  const points = [
    [rect.left - ring, rect.top + rect.height / 2],
    [rect.right + ring, rect.top + rect.height / 2],
    [rect.left + rect.width / 2, rect.top - ring],
    [rect.left + rect.width / 2, rect.bottom + ring],
  ].filter(([x, y]) => x >= 0 && y >= 0 && x < innerWidth && y < innerHeight);
  let background = "rgb(255, 255, 255)";
  if (points.length) {
    for (const under of document.elementsFromPoint(...points[0])) {
      if (el.contains(under)) continue;
      const color = getComputedStyle(under).backgroundColor;
      if (color !== "rgba(0, 0, 0, 0)" && color !== "transparent") { background = color; break; }
    }
  }
  return {
    name: (el.innerText || el.getAttribute("aria-label") || el.name || el.id || el.tagName).trim(),
    isBody: el === document.body,
    outlineStyle: style.outlineStyle,
    outlineWidth: parseFloat(style.outlineWidth),
    outlineColor: style.outlineColor,
    background: background,
    onScreen: rect.right > 0 && rect.bottom > 0 && rect.left < innerWidth && rect.top < innerHeight,
  };
}"""


def rgb(css_color: str) -> tuple[float, ...]:
    numbers = css_color[css_color.index("(") + 1 : css_color.index(")")].replace(",", " ").split()
    return tuple(float(value) for value in numbers[:3])


def contrast(first: str, second: str) -> float:
    def luminance(color: str) -> float:
        r, g, b = (
            channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4
            for channel in (value / 255 for value in rgb(color))
        )
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_contrast_of_known_colours():
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21)
    assert contrast("rgb(118, 118, 118)", "rgb(255, 255, 255)") == pytest.approx(4.54, abs=0.01)


def test_keyboard_focus_is_visible_with_enough_contrast_on_every_control(
    open_page, subscriber_factory
):
    """WCAG 2.4.7 and 1.4.11: every control reached with Tab shows a focus outline of
    at least 2 px with 3:1 contrast against what it is drawn on; 2.4.1: the skip link
    shows when focused and moves focus to the main content."""
    active = subscriber_factory(email="ann@example.com", first_name="Ann")
    gone = subscriber_factory(email="gone@example.com", status=Subscriber.Status.UNSUBSCRIBED)
    paths = [
        "/",
        reverse("newsletter:preferences", args=[make_token(active, Purpose.PREFERENCES)]),
        reverse("newsletter:preferences", args=[make_token(gone, Purpose.PREFERENCES)]),
        "/no-such-page/",
    ]
    page = open_page()
    failures = []
    for path in paths:
        page.goto(path)
        reached = []
        for _ in range(30):
            page.keyboard.press("Tab")
            ring = page.evaluate(FOCUS_RING_JS)
            if ring["isBody"] or (reached and ring["name"] == reached[0]):
                break
            reached.append(ring["name"])
            where = f"{path} {ring['name']!r}"
            if not ring["onScreen"]:
                failures.append(f"{where}: focused but off screen")
            if ring["outlineStyle"] == "none" or ring["outlineWidth"] < 2:
                failures.append(f"{where}: no visible focus outline")
            elif (ratio := contrast(ring["outlineColor"], ring["background"])) < 3:
                failures.append(
                    f"{where}: focus outline {ring['outlineColor']} on {ring['background']} "
                    f"has contrast {ratio:.2f}:1, under 3:1"
                )
        assert reached[0] == "Skip to main content", path
        assert len(reached) >= 3, f"{path}: only {reached} can be reached with Tab"

    assert not failures, "\n".join(failures)
    page.goto("/")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
