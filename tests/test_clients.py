"""The client's address: X-Forwarded-For is believed only from TRUSTED_PROXIES, so a
forged header moves no limit, and readers behind our own proxy keep limits of their own."""

import pytest
from django.core.checks import run_checks
from django.test import Client, RequestFactory
from django.urls import reverse

from newsletter.models import Subscriber
from newsletter.views.clients import client_ip
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROXY = "172.28.0.10"


def signup(client: Client, capture, email: str, *, peer: str, forwarded: str = "") -> int:
    with capture(execute=True):
        response = client.post(
            reverse("newsletter:subscribe"),
            {"email": email},
            REMOTE_ADDR=peer,
            HTTP_X_FORWARDED_FOR=forwarded,
        )
    return response.status_code


def address(peer: str, forwarded: str = "") -> str:
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    return str(client_ip(request))


def test_a_spoofed_forwarded_header_from_an_untrusted_client_changes_nothing(
    client, settings, django_capture_on_commit_callbacks
):
    settings.TRUSTED_PROXIES = [PROXY]
    settings.NEWSLETTER_SIGNUP_RATE_IP = "2/h"
    statuses = [
        signup(
            client,
            django_capture_on_commit_callbacks,
            f"r{n}@example.com",
            peer="198.51.100.7",
            forwarded=f"203.0.113.{n}",  # a new "address" per request
        )
        for n in range(3)
    ]
    assert statuses == [302, 302, 429]
    event = Subscriber.objects.get(email="r0@example.com").consent_events.get()
    assert event.ip_address == "198.51.100.7"


def test_behind_a_trusted_proxy_two_clients_get_separate_limits(
    client, settings, django_capture_on_commit_callbacks
):
    settings.TRUSTED_PROXIES = [PROXY]
    settings.NEWSLETTER_SIGNUP_RATE_IP = "2/h"

    def from_client(n: int, who: str) -> int:
        return signup(
            client, django_capture_on_commit_callbacks, f"{who}{n}@example.com",
            peer=PROXY, forwarded=who,
        )  # fmt: skip

    first = [from_client(n, "198.51.100.1") for n in range(3)]
    second = [from_client(n, "198.51.100.2") for n in range(2)]

    assert first == [302, 302, 429]
    assert second == [302, 302]
    event = Subscriber.objects.get(email="198.51.100.20@example.com").consent_events.get()
    assert event.ip_address == "198.51.100.2"


def test_without_trusted_proxies_the_forwarded_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert address(PROXY, "198.51.100.1") == PROXY


def test_the_client_is_the_first_untrusted_hop_from_the_right(settings):
    settings.TRUSTED_PROXIES = [PROXY, "10.0.0.0/8"]
    # The client wrote "1.2.3.4" itself; our two proxies appended what they saw.
    assert address(PROXY, "1.2.3.4, 198.51.100.9, 10.1.2.3") == "198.51.100.9"


def test_a_garbled_forwarded_header_falls_back_to_the_last_believed_hop(settings):
    settings.TRUSTED_PROXIES = [PROXY]
    assert address(PROXY, "not-an-address") == PROXY
    assert address(PROXY, "") == PROXY


def test_admin_login_limit_counts_the_forwarded_client_behind_a_trusted_proxy(client, settings):
    settings.TRUSTED_PROXIES = [PROXY]
    settings.ADMIN_LOGIN_RATE = "2/15m"
    UserFactory(username="editor")

    def log_in(who: str) -> int:
        return client.post(
            reverse("admin:login"),
            {"username": f"guess-{who}", "password": "wrong"},
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=who,
        ).status_code

    assert [log_in("198.51.100.1") for _ in range(3)] == [200, 200, 429]
    assert log_in("198.51.100.2") == 200


@pytest.mark.parametrize(
    ("value", "check_id"), [("172.28.0.300", "newsletter.E010"), ("0.0.0.0/0", "newsletter.E011")]
)
def test_a_bad_trusted_proxies_entry_fails_the_system_check(settings, value, check_id):
    settings.TRUSTED_PROXIES = ["10.0.0.1", value]
    assert check_id in [message.id for message in run_checks()]


def test_good_trusted_proxies_pass_the_system_check(settings):
    settings.TRUSTED_PROXIES = ["172.28.0.10", "10.0.0.0/8", "2001:db8::/32"]
    assert not [m for m in run_checks() if m.id in ("newsletter.E010", "newsletter.E011")]
