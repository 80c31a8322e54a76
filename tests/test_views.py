from datetime import timedelta

import pytest
from django.core import mail, signing
from django.db import OperationalError
from django.test import Client
from django.urls import reverse

from newsletter.models import ConsentEvent, Subscriber
from newsletter.tokens import Purpose, make_token
from tests.conftest import links_in, path_of

pytestmark = pytest.mark.django_db


def signup(client: Client, capture, **data):
    with capture(execute=True):
        return client.post(reverse("newsletter:subscribe"), data, REMOTE_ADDR="198.51.100.7")


def test_home_page_shows_the_signup_form_with_the_consent_wording(client, main_topic):
    response = client.get("/")
    assert response.status_code == 200
    content = response.content.decode()
    assert 'action="/newsletter/subscribe/"' in content
    assert "I can unsubscribe at any time" in content
    assert 'lang="en"' in content
    assert "Skip to main content" in content


def test_signup_confirm_by_following_the_email_link(client, django_capture_on_commit_callbacks):
    response = signup(client, django_capture_on_commit_callbacks, email="ann@example.com")
    assert response.status_code == 302

    confirm_path = path_of(links_in(mail.outbox[0], "/newsletter/confirm/")[0])
    page = client.get(confirm_path)
    assert page.status_code == 200
    assert b"Confirm my subscription" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(confirm_path, HTTP_USER_AGENT="Firefox", REMOTE_ADDR="198.51.100.8")

    assert done.status_code == 200
    subscriber = Subscriber.objects.get(email="ann@example.com")
    assert subscriber.status == Subscriber.Status.ACTIVE
    event = subscriber.consent_events.get(kind=ConsentEvent.Kind.CONFIRM)
    assert (event.ip_address, event.user_agent) == ("198.51.100.8", "Firefox")
    assert mail.outbox[-1].subject == "Welcome to Advances"


def test_get_of_a_confirm_link_does_not_confirm(client, subscriber_factory):
    subscriber = subscriber_factory(status=Subscriber.Status.PENDING)

    response = client.get(
        reverse("newsletter:confirm", args=[make_token(subscriber, Purpose.CONFIRM)])
    )

    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING


def test_the_four_signup_outcomes_return_identical_responses(
    client, subscriber_factory, django_capture_on_commit_callbacks
):
    subscriber_factory(email="pending@example.com", status=Subscriber.Status.PENDING)
    subscriber_factory(email="active@example.com", status=Subscriber.Status.ACTIVE)
    subscriber_factory(email="gone@example.com", status=Subscriber.Status.UNSUBSCRIBED)
    responses = [
        signup(client, django_capture_on_commit_callbacks, email=email)
        for email in (
            "new@example.com",
            "pending@example.com",
            "active@example.com",
            "gone@example.com",
        )
    ]
    bot = signup(client, django_capture_on_commit_callbacks, email="bot@example.com", website="x")

    answers = {(r.status_code, r["Location"], r.content) for r in [*responses, bot]}
    assert answers == {(302, reverse("newsletter:check_inbox"), b"")}
    assert not Subscriber.objects.filter(email="bot@example.com").exists()
    assert client.get(reverse("newsletter:check_inbox")).status_code == 200


def test_signup_rate_limit_per_address(client, settings, django_capture_on_commit_callbacks):
    settings.NEWSLETTER_SIGNUP_RATE_EMAIL = "2/h"
    statuses = [
        signup(client, django_capture_on_commit_callbacks, email=email).status_code
        for email in ("ann@example.com", "ANN@example.com", " ann@example.com")
    ]
    assert statuses == [302, 302, 429]
    assert (
        signup(client, django_capture_on_commit_callbacks, email="bob@example.com").status_code
        == 302
    )


def test_signup_rate_limit_per_ip(client, settings, django_capture_on_commit_callbacks):
    settings.NEWSLETTER_SIGNUP_RATE_IP = "3/h"
    statuses = [
        signup(client, django_capture_on_commit_callbacks, email=f"r{n}@example.com").status_code
        for n in range(4)
    ]
    assert statuses == [302, 302, 302, 429]
    assert (
        b"Too many attempts"
        in signup(client, django_capture_on_commit_callbacks, email="r9@example.com").content
    )


@pytest.mark.parametrize("remote_addr", ["", "not-an-ip", "unix:/run/gunicorn.sock"])
def test_signup_without_a_usable_client_address_is_accepted(
    client, remote_addr, django_capture_on_commit_callbacks, caplog
):
    # An app server on a Unix socket leaves REMOTE_ADDR empty; django-ratelimit's "ip"
    # key raised on it, a 500 for every signup.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("newsletter:subscribe"), {"email": "ann@example.com"}, REMOTE_ADDR=remote_addr
        )

    assert response.status_code == 302
    event = Subscriber.objects.get(email="ann@example.com").consent_events.get()
    assert event.ip_address is None
    assert "per-IP signup limit does not apply" in caplog.text
    assert links_in(mail.outbox[0], "/newsletter/confirm/")


def test_per_ip_signup_limit_counts_an_ipv6_slash_64_as_one_client(
    client, settings, django_capture_on_commit_callbacks
):
    settings.NEWSLETTER_SIGNUP_RATE_IP = "2/h"
    statuses = [
        signup_from(client, django_capture_on_commit_callbacks, f"r{n}@example.com", address)
        for n, address in enumerate(["2001:db8::1", "2001:db8::2", "2001:db8::ffff:1"])
    ]
    assert statuses == [302, 302, 429]
    assert (
        signup_from(client, django_capture_on_commit_callbacks, "r9@example.com", "2001:db8:1::1")
        == 302
    )


def signup_from(client: Client, capture, email: str, address: str) -> int:
    with capture(execute=True):
        response = client.post(
            reverse("newsletter:subscribe"), {"email": email}, REMOTE_ADDR=address
        )
    return response.status_code


@pytest.mark.parametrize("zoned", ["2001:db8:1000:1000:1000:1000:1000:1000%eth0", "fe80::1%0"])
def test_an_ipv6_zone_is_dropped_from_the_consent_log(client, zoned):
    # Past 39 characters Django stores the text as it is, and PostgreSQL's inet type
    # refuses a zone: that was a 500.
    response = client.post(
        reverse("newsletter:subscribe"), {"email": "ann@example.com"}, REMOTE_ADDR=zoned
    )
    assert response.status_code == 302
    event = Subscriber.objects.get(email="ann@example.com").consent_events.get()
    assert event.ip_address == zoned.split("%")[0]


@pytest.mark.parametrize("referer", ["http://[", "https://[::1/newsletter/"])
def test_a_referer_that_is_not_a_url_does_not_stop_a_signup(client, referer):
    response = client.post(
        reverse("newsletter:subscribe"), {"email": "ann@example.com"}, HTTP_REFERER=referer
    )
    assert response.status_code == 302
    event = Subscriber.objects.get(email="ann@example.com").consent_events.get()
    assert event.source == reverse("newsletter:subscribe")


def test_nul_bytes_from_the_client_headers_are_kept_out_of_the_consent_log(client):
    # PostgreSQL's text fields cannot contain NUL: storing it was a 500.
    response = client.post(
        reverse("newsletter:subscribe"),
        {"email": "ann@example.com"},
        HTTP_USER_AGENT="Mozilla/5.0\x00evil",
        HTTP_REFERER="https://advances.test/a\x00b",
    )
    assert response.status_code == 302
    event = Subscriber.objects.get(email="ann@example.com").consent_events.get()
    assert (event.user_agent, event.source) == ("Mozilla/5.0\ufffdevil", "/a\ufffdb")


def test_signup_with_a_topic_that_no_longer_exists_says_why(client, main_topic):
    # An editor may delete a topic while a reader has the form open; the topics error
    # was not shown, leaving the reader with the same form and no reason.
    response = client.post(
        reverse("newsletter:subscribe"),
        {"email": "ann@example.com", "topics": [main_topic.pk, 999]},
    )
    assert response.status_code == 400
    assert b'id="topics-errors"' in response.content
    assert b"999 is not one of the available choices" in response.content


@pytest.mark.parametrize("topic", [str(2**63), str(-(2**63) - 1), "9" * 30])
def test_a_topic_number_past_64_bits_is_a_form_error(client, subscriber_factory, topic):
    # SQLite raised OverflowError on it: a 500 on the embedded default.
    signup = client.post(
        reverse("newsletter:subscribe"), {"email": "ann@example.com", "topics": topic}
    )
    assert signup.status_code == 400
    assert signup.context["form"].errors["topics"]
    assert not Subscriber.objects.filter(email="ann@example.com").exists()

    subscriber = subscriber_factory()
    url = reverse("newsletter:preferences", args=[make_token(subscriber, Purpose.PREFERENCES)])
    assert client.post(url, {"first_name": "Ann", "topics": topic}).status_code == 400


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "ann@example.com\r\nBcc: victim@example.org"),
        ("email", "ann@example.com\nX-Injected: 1"),
        ("first_name", "Ann\r\nBcc: victim@example.org"),
        ("first_name", "Ann\x00"),
    ],
)
def test_header_injection_is_refused_with_a_form_error(client, field, value):
    data = {"email": "ann@example.com", field: value}
    response = client.post(reverse("newsletter:subscribe"), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("email", ["not-an-address", "", "a" * 250 + "@example.com"])
def test_invalid_addresses_get_a_clear_form_error(client, email):
    response = client.post(reverse("newsletter:subscribe"), {"email": email})
    assert response.status_code == 400
    assert b"errorlist" in response.content
    assert not Subscriber.objects.exists()


def test_one_click_unsubscribe_without_cookie_or_csrf_token(subscriber_factory):
    subscriber = subscriber_factory()
    client = Client(enforce_csrf_checks=True)
    url = reverse("newsletter:unsubscribe", args=[make_token(subscriber, Purpose.UNSUBSCRIBE)])

    response = client.post(
        url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert subscriber.consent_events.filter(kind=ConsentEvent.Kind.UNSUBSCRIBE).exists()
    assert b"Subscribe again" in response.content
    assert (
        client.post(
            url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        ).status_code
        == 200
    )


def test_get_of_an_unsubscribe_link_shows_a_button_and_changes_nothing(client, subscriber_factory):
    subscriber = subscriber_factory()
    response = client.get(
        reverse("newsletter:unsubscribe", args=[make_token(subscriber, Purpose.UNSUBSCRIBE)])
    )
    assert response.status_code == 200
    assert b"<button" in response.content
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_resubscribe_from_the_unsubscribed_page_means_double_opt_in_again(
    subscriber_factory, django_capture_on_commit_callbacks
):
    subscriber = subscriber_factory(email="ann@example.com")
    client = Client(enforce_csrf_checks=True)
    page = client.post(
        reverse("newsletter:unsubscribe", args=[make_token(subscriber, Purpose.UNSUBSCRIBE)])
    )
    csrf = page.context["csrf_token"]

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("newsletter:subscribe"),
            {"email": "ann@example.com", "csrfmiddlewaretoken": csrf},
        )

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING
    assert links_in(mail.outbox[-1], "/newsletter/confirm/")


@pytest.mark.parametrize("name", ["confirm", "unsubscribe", "preferences"])
@pytest.mark.parametrize(
    "token",
    ["garbage", "", "a:b:c", "x" * 5000, "%00", "WzEsImFiYyJd:1tXXXX:bad-signature", "ü"],
)
def test_forged_tokens_get_a_clear_400_page(client, name, token, subscriber_factory):
    subscriber_factory()
    path = f"/newsletter/{name}/{token}/"
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code in (400, 404)
        assert b"link" in response.content.lower() or response.status_code == 404


@pytest.mark.parametrize(
    ("made_for", "used_as"),
    [
        (Purpose.UNSUBSCRIBE, "confirm"),
        (Purpose.CONFIRM, "unsubscribe"),
        (Purpose.CONFIRM, "preferences"),
        (Purpose.UNSUBSCRIBE, "preferences"),
    ],
)
def test_wrong_purpose_tokens_are_refused(client, subscriber_factory, made_for, used_as):
    subscriber = subscriber_factory(status=Subscriber.Status.PENDING)
    response = client.post(
        reverse(f"newsletter:{used_as}", args=[make_token(subscriber, made_for)])
    )
    assert response.status_code == 400
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING


def test_altered_token_is_refused(client, subscriber_factory):
    victim = subscriber_factory(email="victim@example.com")
    token = make_token(subscriber_factory(), Purpose.PREFERENCES)
    _payload, rest = token.split(":", 1)
    forged = signing.b64_encode(f'[{victim.pk},"{victim.secret}"]'.encode()).decode() + ":" + rest

    response = client.get(reverse("newsletter:preferences", args=[forged]))

    assert response.status_code == 400
    assert b"victim@example.com" not in response.content


def test_a_new_secret_voids_every_link(client, subscriber_factory):
    subscriber = subscriber_factory()
    url = reverse("newsletter:unsubscribe", args=[make_token(subscriber, Purpose.UNSUBSCRIBE)])
    subscriber.secret = "rotated"
    subscriber.save()
    assert client.post(url).status_code == 400


def test_expired_confirm_link_offers_a_new_one(
    client, subscriber_factory, settings, django_capture_on_commit_callbacks
):
    subscriber = subscriber_factory(status=Subscriber.Status.PENDING)
    settings.NEWSLETTER_CONFIRM_DAYS = 0
    url = reverse("newsletter:confirm", args=[make_token(subscriber, Purpose.CONFIRM)])

    page = client.get(url)
    assert page.status_code == 410
    assert b"Send me a new link" in page.content
    assert client.post(url).status_code == 410
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "resend"})
    assert links_in(mail.outbox[0], "/newsletter/confirm/")


def test_confirm_link_of_an_unsubscribed_reader_does_not_resubscribe(client, subscriber_factory):
    subscriber = subscriber_factory(status=Subscriber.Status.UNSUBSCRIBED)
    response = client.post(
        reverse("newsletter:confirm", args=[make_token(subscriber, Purpose.CONFIRM)])
    )
    assert response.status_code == 409
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_preferences_page_changes_name_and_topics(client, subscriber_factory, topic, main_topic):
    subscriber = subscriber_factory(first_name="Ann")
    url = reverse("newsletter:preferences", args=[make_token(subscriber, Purpose.PREFERENCES)])
    page = client.get(url)
    assert page.status_code == 200
    assert b'value="Ann"' in page.content
    assert b"Unsubscribe from all" in page.content

    response = client.post(url, {"first_name": "Annie", "topics": [topic.pk, main_topic.pk]})

    assert response.status_code == 200
    assert b"preferences are saved" in response.content
    subscriber.refresh_from_db()
    assert subscriber.first_name == "Annie"
    assert set(subscriber.topics.all()) == {topic, main_topic}


def test_preferences_need_a_topic_or_an_unsubscribe(client, subscriber_factory):
    subscriber = subscriber_factory()
    url = reverse("newsletter:preferences", args=[make_token(subscriber, Purpose.PREFERENCES)])
    response = client.post(url, {"first_name": "Ann"})
    assert response.status_code == 400
    assert b"Choose at least one topic" in response.content


def test_preferences_unsubscribe_from_all_button_posts_to_the_unsubscribe_link(
    client, subscriber_factory
):
    subscriber = subscriber_factory()
    page = client.get(
        reverse("newsletter:preferences", args=[make_token(subscriber, Purpose.PREFERENCES)])
    )
    assert page.context["unsubscribe_url"].encode() in page.content
    client.post(page.context["unsubscribe_url"])
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_preferences_of_an_unsubscribed_reader_offer_to_subscribe_again(client, subscriber_factory):
    subscriber = subscriber_factory(status=Subscriber.Status.UNSUBSCRIBED)
    url = reverse("newsletter:preferences", args=[make_token(subscriber, Purpose.PREFERENCES)])
    for response in (client.get(url), client.post(url, {"topics": []})):
        assert response.status_code == 200
        assert b"Subscribe again" in response.content


def test_healthz_answers_200_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200


def test_healthz_answers_503_when_the_database_does_not(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("newsletter.views.site.connection.cursor", refuse)
    assert client.get("/healthz").status_code == 503


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content


def test_csrf_failure_is_a_friendly_403(db):
    response = Client(enforce_csrf_checks=True).post(
        reverse("newsletter:subscribe"), {"email": "a@example.com"}
    )
    assert response.status_code == 403
    assert b"Please try again" in response.content


def test_confirm_link_expires_after_seven_days_by_default(settings):
    assert timedelta(days=settings.NEWSLETTER_CONFIRM_DAYS) == timedelta(days=7)


def test_head_requests_answer_like_get_and_change_nothing(client, subscriber_factory):
    """Link checkers and mail scanners send HEAD: every page answers it, and a HEAD on
    a confirm or unsubscribe link changes nothing."""
    pending = subscriber_factory(status="pending")
    active = subscriber_factory(status="active")
    pages = [
        "/",
        "/healthz",
        reverse("newsletter:subscribe"),
        reverse("newsletter:archive"),
        reverse("newsletter:confirm", args=[make_token(pending, Purpose.CONFIRM)]),
        reverse("newsletter:unsubscribe", args=[make_token(active, Purpose.UNSUBSCRIBE)]),
        reverse("newsletter:preferences", args=[make_token(active, Purpose.PREFERENCES)]),
    ]
    for page in pages:
        response = client.head(page)
        assert response.status_code == 200, page
        assert response.content == b""
    pending.refresh_from_db()
    active.refresh_from_db()
    assert (pending.status, active.status) == ("pending", "active")
