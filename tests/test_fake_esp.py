"""The fake ESP against Anymail's real Mailgun and Postmark backends, unmocked."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import requests
from anymail.exceptions import AnymailRecipientsRefused, AnymailRequestsAPIError
from anymail.message import AnymailMessage
from django.core.mail import get_connection

from tests.fake_esp import FakeESP

BASE_DIR = Path(__file__).resolve().parent.parent
FROM = "Advances <advances@mg.example.org>"


def mailgun(esp: FakeESP, **kwargs: Any) -> Any:
    options = {"api_key": "test-key", "sender_domain": "mg.example.org"} | kwargs
    return get_connection(
        "anymail.backends.mailgun.EmailBackend", api_url=esp.mailgun_api_url, **options
    )


def postmark(esp: FakeESP, **kwargs: Any) -> Any:
    options = {"server_token": "test-token"} | kwargs
    return get_connection(
        "anymail.backends.postmark.EmailBackend", api_url=esp.postmark_api_url, **options
    )


def batch_message(addresses: list[str], connection: Any, html: str | None = None) -> AnymailMessage:
    """A Mailgun batch with per-recipient merge data, headers and metadata, as the
    newsletter sends it."""
    message = AnymailMessage(
        subject="Issue 7 for %recipient.name%",
        body="Hello %recipient.name%, unsubscribe at %recipient.unsub%",
        from_email=FROM,
        to=addresses,
        connection=connection,
    )
    message.attach_alternative(
        html or "<p>Hello %recipient.name%</p><a href='%recipient.unsub%'>unsubscribe</a>",
        "text/html",
    )
    message.merge_data = {
        address: {"name": f"Reader {n}", "unsub": f"https://advances.test/u/{n}"}
        for n, address in enumerate(addresses)
    }
    message.merge_headers = {
        address: {
            "List-Unsubscribe": f"<https://advances.test/u/{n}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        for n, address in enumerate(addresses)
    }
    message.merge_metadata = {
        address: {"delivery": str(1000 + n)} for n, address in enumerate(addresses)
    }
    message.extra_headers = {"List-Id": "Advances <advances.example.org>"}
    message.metadata = {"issue": "7"}
    return message


def simple_message(connection: Any, to: str = "ann@example.com") -> AnymailMessage:
    return AnymailMessage(
        subject="Hi", body="Plain", from_email=FROM, to=[to], connection=connection
    )


# --- Mailgun ------------------------------------------------------------------------------


def test_mailgun_batch_fills_each_recipients_headers_metadata_and_bodies(fake_esp):
    addresses = ["ann@example.com", "Bob@Example.com", "cy@example.com"]
    message = batch_message(addresses, mailgun(fake_esp))

    assert message.send() == 1

    assert fake_esp.calls == 1
    assert fake_esp.accepted_calls == 1
    assert fake_esp.recipients() == ["ann@example.com", "bob@example.com", "cy@example.com"]
    message_id = message.anymail_status.message_id
    assert message_id.startswith("<")
    assert message_id.endswith("@mg.example.org>")
    for n, entry in enumerate(fake_esp.accepted):
        assert entry.esp == "mailgun"
        assert entry.message_id == message_id
        assert entry.subject == f"Issue 7 for Reader {n}"
        assert entry.text == f"Hello Reader {n}, unsubscribe at https://advances.test/u/{n}"
        assert entry.html == (
            f"<p>Hello Reader {n}</p><a href='https://advances.test/u/{n}'>unsubscribe</a>"
        )
        assert entry.headers == {
            "List-Unsubscribe": f"<https://advances.test/u/{n}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "Advances <advances.example.org>",
        }
        assert entry.metadata == {"issue": "7", "delivery": str(1000 + n)}
        # The project's SEND_DEFAULTS turn tracking off.
        assert entry.tracking == {"o:tracking-clicks": "no", "o:tracking-opens": "no"}
    assert message.anymail_status.status == {"queued"}


def test_mailgun_multipart_body_and_display_names(fake_esp):
    # An attachment makes requests send multipart/form-data instead of a urlencoded form.
    message = AnymailMessage(
        subject="Hello %recipient.name%",
        body="Text for %recipient.name% with ünïcödé",
        from_email=FROM,
        to=['"Doe, Ann" <Ann@Example.com>', "Bob Example <bob@example.com>"],
        connection=mailgun(fake_esp),
    )
    message.merge_data = {"Ann@Example.com": {"name": "Ann"}, "bob@example.com": {}}
    message.attach("notes.txt", "--boundary-lookalike\r\n\r\nattached", "text/plain")

    message.send()

    assert fake_esp.recipients() == ["ann@example.com", "bob@example.com"]
    ann, bob = fake_esp.accepted
    assert ann.subject == "Hello Ann"
    assert ann.text == "Text for Ann with ünïcödé"
    # Mailgun fills a missing recipient variable with nothing.
    assert bob.subject == "Hello "
    assert bob.html is None


@pytest.mark.parametrize("fault", ["429", "500"])
def test_mailgun_http_fault_raises_and_records_nothing(fake_esp, fault):
    fake_esp.fail_next(1, fault)
    connection = mailgun(fake_esp)

    with pytest.raises(AnymailRequestsAPIError) as raised:
        simple_message(connection).send()

    assert raised.value.status_code == int(fault)
    assert fake_esp.accepted == []
    assert (fake_esp.calls, fake_esp.accepted_calls) == (1, 0)
    # The fault was for one call only.
    simple_message(connection).send()
    assert fake_esp.recipients() == ["ann@example.com"]
    assert (fake_esp.calls, fake_esp.accepted_calls) == (2, 1)


def test_mailgun_dropped_connection_is_a_network_error(fake_esp):
    fake_esp.fail_next(1, "drop")
    connection = mailgun(fake_esp)

    with pytest.raises(AnymailRequestsAPIError) as raised:
        simple_message(connection).send()

    assert raised.value.status_code is None
    assert isinstance(raised.value, requests.ConnectionError)
    assert fake_esp.accepted == []
    assert fake_esp.calls == 1
    # Anymail retries nothing itself; the next send goes through on a new connection.
    simple_message(connection).send()
    assert (fake_esp.calls, fake_esp.accepted_calls) == (2, 1)


def test_mailgun_timeout_fault_outlasts_the_client_timeout(fake_esp):
    fake_esp.timeout_seconds = 1.5
    fake_esp.fail_next(1, "timeout")
    started = time.monotonic()

    with pytest.raises(AnymailRequestsAPIError) as raised:
        simple_message(mailgun(fake_esp, timeout=0.5)).send()

    assert time.monotonic() - started < 1.4
    assert raised.value.status_code is None
    assert isinstance(raised.value, requests.Timeout)
    assert fake_esp.accepted == []
    assert fake_esp.calls == 1


def outcomes_at_fault_rate(esp: FakeESP, seed: int) -> list[int | None]:
    esp.reset()
    esp.set_fault_rate(0.3, ["429", "500"], seed=seed)
    connection = mailgun(esp)
    outcomes: list[int | None] = []
    with connection:  # one keep-alive session for the whole run
        for n in range(200):
            try:
                simple_message(connection, f"r{n}@example.com").send()
            except AnymailRequestsAPIError as error:
                outcomes.append(error.status_code)
            else:
                outcomes.append(None)
    return outcomes


def test_fault_rate_is_seeded_and_near_the_rate(fake_esp):
    first = outcomes_at_fault_rate(fake_esp, seed=1)
    failures = [outcome for outcome in first if outcome is not None]

    assert 40 <= len(failures) <= 80
    assert set(failures) == {429, 500}
    assert fake_esp.calls == 200
    assert fake_esp.accepted_calls == len(fake_esp.accepted) == 200 - len(failures)
    assert outcomes_at_fault_rate(fake_esp, seed=1) == first
    assert outcomes_at_fault_rate(fake_esp, seed=2) != first


def test_mailgun_wrong_api_key_is_refused(fake_esp):
    with pytest.raises(AnymailRequestsAPIError) as raised:
        simple_message(mailgun(fake_esp, api_key="wrong")).send()

    assert raised.value.status_code == 401
    assert raised.value.response.json() == {"message": "Invalid private key"}
    assert fake_esp.accepted == []


def test_mailgun_refuses_more_than_1000_recipients(fake_esp):
    addresses = [f"r{n}@example.com" for n in range(1001)]

    with pytest.raises(AnymailRequestsAPIError) as raised:
        batch_message(addresses, mailgun(fake_esp)).send()

    assert raised.value.status_code == 400
    assert fake_esp.accepted == []


def test_mailgun_thousand_recipient_batch_without_bodies():
    addresses = [f"reader{n}@example.com" for n in range(1000)]
    html = "<p>Hello %recipient.name%</p>" + "<p>" + "x" * 15_000 + "</p>"
    with FakeESP(record_bodies=False) as esp:
        connection = mailgun(esp)
        message = batch_message(addresses, connection, html=html)
        started = time.monotonic()
        message.send()
        elapsed = time.monotonic() - started

    assert len(esp.accepted) == 1000
    last = esp.accepted[-1]
    assert last.to == "reader999@example.com"
    assert last.html is None
    assert last.text is None
    assert last.headers["List-Unsubscribe"] == "<https://advances.test/u/999>"
    assert last.metadata["delivery"] == "1999"
    # Generous: the server's share is a few milliseconds; this only catches a blow-up.
    assert elapsed < 2.0


def test_concurrent_senders_are_all_recorded(fake_esp):
    errors: list[BaseException] = []

    def sender(worker: int) -> None:
        try:
            with mailgun(fake_esp) as connection:
                for n in range(10):
                    simple_message(connection, f"w{worker}-{n}@example.com").send()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=sender, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert fake_esp.calls == fake_esp.accepted_calls == 80
    assert sorted(fake_esp.recipients()) == sorted(
        f"w{worker}-{n}@example.com" for worker in range(8) for n in range(10)
    )


# --- Postmark -----------------------------------------------------------------------------


def test_postmark_single_send(fake_esp):
    message = AnymailMessage(
        subject="Welcome",
        body="Plain",
        from_email=FROM,
        to=["Ann <ann@example.com>"],
        headers={"List-Unsubscribe": "<https://advances.test/u/1>"},
        metadata={"delivery": "17"},
        connection=postmark(fake_esp),
    )
    message.attach_alternative("<p>Welcome</p>", "text/html")

    message.send()

    (entry,) = fake_esp.accepted
    assert entry.esp == "postmark"
    assert entry.to == "ann@example.com"
    assert entry.subject == "Welcome"
    assert entry.text == "Plain"
    assert entry.html == "<p>Welcome</p>"
    assert entry.headers == {"List-Unsubscribe": "<https://advances.test/u/1>"}
    assert entry.metadata == {"delivery": "17"}
    assert entry.tracking == {"TrackOpens": "False", "TrackLinks": "None"}
    assert message.anymail_status.message_id == entry.message_id
    assert message.anymail_status.status == {"sent"}


def test_postmark_batch_refuses_only_the_invalid_address(fake_esp):
    addresses = ["ann@example.com", "invalid-1@example.com", "cy@example.com"]
    message = AnymailMessage(
        subject="Issue 7",
        body="Plain",
        from_email=FROM,
        to=addresses,
        connection=postmark(fake_esp),
    )
    # Per-recipient metadata and headers make Anymail use /email/batch.
    message.merge_metadata = {address: {"delivery": str(n)} for n, address in enumerate(addresses)}
    message.merge_headers = {
        address: {"List-Unsubscribe": f"<https://advances.test/u/{n}>"}
        for n, address in enumerate(addresses)
    }

    message.send()

    recipients = message.anymail_status.recipients
    assert recipients["invalid-1@example.com"].status == "invalid"
    assert recipients["ann@example.com"].status == "sent"
    assert recipients["cy@example.com"].status == "sent"
    assert fake_esp.calls == 1
    assert fake_esp.recipients() == ["ann@example.com", "cy@example.com"]
    ann, cy = fake_esp.accepted
    assert ann.metadata == {"delivery": "0"}
    assert cy.headers == {"List-Unsubscribe": "<https://advances.test/u/2>"}
    assert ann.message_id != cy.message_id
    assert recipients["cy@example.com"].message_id == cy.message_id


def test_postmark_single_invalid_address_is_refused(fake_esp):
    with pytest.raises(AnymailRecipientsRefused):
        simple_message(postmark(fake_esp), "invalid-1@example.com").send()

    assert fake_esp.accepted == []
    assert (fake_esp.calls, fake_esp.accepted_calls) == (1, 0)


def test_postmark_wrong_token_is_refused(fake_esp):
    with pytest.raises(AnymailRequestsAPIError) as raised:
        simple_message(postmark(fake_esp, server_token="wrong")).send()

    assert raised.value.status_code == 401
    assert raised.value.response.json()["ErrorCode"] == 10


def test_postmark_batch_over_500_is_refused(fake_esp):
    addresses = [f"r{n}@example.com" for n in range(501)]
    message = AnymailMessage(
        subject="S", body="B", from_email=FROM, to=addresses, connection=postmark(fake_esp)
    )
    message.merge_metadata = {address: {"n": "1"} for address in addresses}

    with pytest.raises(AnymailRequestsAPIError) as raised:
        message.send()

    assert raised.value.status_code == 422
    assert fake_esp.accepted == []


def test_postmark_fault(fake_esp):
    fake_esp.fail_next(1, "500")

    with pytest.raises(AnymailRequestsAPIError) as raised:
        simple_message(postmark(fake_esp)).send()

    assert raised.value.status_code == 500
    assert fake_esp.accepted == []


# --- Recording, reset and the control API -------------------------------------------------


def test_without_bodies_headers_and_metadata_are_still_recorded():
    with FakeESP(record_bodies=False) as esp:
        batch_message(["ann@example.com"], mailgun(esp)).send()
        simple_message(postmark(esp), "bob@example.com").send()

    mailgun_entry, postmark_entry = esp.accepted
    assert (mailgun_entry.text, mailgun_entry.html) == (None, None)
    assert (postmark_entry.text, postmark_entry.html) == (None, None)
    assert mailgun_entry.subject == "Issue 7 for Reader 0"
    assert mailgun_entry.headers["List-Unsubscribe"] == "<https://advances.test/u/0>"
    assert mailgun_entry.metadata["delivery"] == "1000"


def test_duplicates_are_kept_and_reset_clears_everything(fake_esp):
    connection = mailgun(fake_esp)
    simple_message(connection).send()
    simple_message(connection, "ANN@example.com").send()
    assert fake_esp.recipients() == ["ann@example.com", "ann@example.com"]
    assert fake_esp.stats() == {
        "calls": 2,
        "accepted_calls": 2,
        "accepted": 2,
        "unique_recipients": 1,
        "duplicates": 1,
        "template_calls": 0,
    }
    fake_esp.fail_next(5, "500")
    fake_esp.set_fault_rate(1.0, ["429"])
    fake_esp.delay = 10.0

    fake_esp.reset()

    assert (fake_esp.accepted, fake_esp.calls, fake_esp.accepted_calls) == ([], 0, 0)
    simple_message(connection).send()  # no fault and no delay left
    assert fake_esp.recipients() == ["ann@example.com"]


def test_unknown_fault_is_refused(fake_esp):
    with pytest.raises(ValueError, match="unknown fault"):
        fake_esp.fail_next(1, "teapot")


def control(esp_url: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{esp_url}{path}", data=data, method="GET" if data is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_control_api(fake_esp):
    control(fake_esp.url, "/_fake/faults", {"fail_next": 1, "fault": "429"})
    connection = mailgun(fake_esp)
    with pytest.raises(AnymailRequestsAPIError):
        simple_message(connection).send()
    simple_message(connection).send()

    assert control(fake_esp.url, "/_fake/stats") == {
        "calls": 2,
        "accepted_calls": 1,
        "accepted": 1,
        "unique_recipients": 1,
        "duplicates": 0,
        "template_calls": 0,
    }
    assert control(fake_esp.url, "/_fake/recipients") == ["ann@example.com"]

    control(fake_esp.url, "/_fake/faults", {"rate": 1.0, "faults": ["500"], "seed": 1})
    with pytest.raises(AnymailRequestsAPIError):
        simple_message(connection).send()

    control(fake_esp.url, "/_fake/reset", {})
    assert control(fake_esp.url, "/_fake/stats")["calls"] == 0
    simple_message(connection).send()
    assert fake_esp.accepted_calls == 1


def test_cli_prints_its_url_serves_stats_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_esp", "--port", "0", "--no-bodies"],
        cwd=BASE_DIR,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("FAKE_ESP_URL=http://127.0.0.1:")
        url = line.removeprefix("FAKE_ESP_URL=")

        connection = get_connection(
            "anymail.backends.mailgun.EmailBackend",
            api_key="test-key",
            sender_domain="mg.example.org",
            api_url=f"{url}/v3",
        )
        simple_message(connection).send()
        assert control(url, "/_fake/stats")["accepted"] == 1
        assert control(url, "/_fake/recipients") == ["ann@example.com"]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert process.stderr.read() == ""
