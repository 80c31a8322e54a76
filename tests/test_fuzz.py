"""Property-based fuzzing of every public URL with Django's test client.

Whatever arrives (any method, body, content type, headers, and tokens that are
garbage, forged, voided, of another purpose or genuine), the answer is never a 5xx, a
garbage Host is a 400, and nobody's token of the wrong purpose or forged token shows
that subscriber's address or changes their subscription (DESIGN.md rules 3 and 8).
"""

import base64
import hmac
import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings as django_settings
from django.core import mail, signing
from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponseBase
from django.test import Client, override_settings
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from newsletter.models import Delivery, DeliveryEvent, Issue, Subscriber
from newsletter.tokens import Purpose, make_token
from newsletter.views import webhooks

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]
PAGES = ["/", "/healthz", "/newsletter/subscribe/", "/newsletter/subscribe/check-your-inbox/"]
TOKEN_PAGES = ["confirm", "unsubscribe", "preferences"]
ROLES = ["pending", "active", "unsubscribed", "bounced", "victim"]
VICTIM_EMAIL = "victim.private@example.org"
FORM = "application/x-www-form-urlencoded"

# --- Strategies --------------------------------------------------------------------------

# Text of every kind: unicode, NUL and other control characters, and some that are huge
# (built by repetition, which is cheap to generate and to shrink).
junk = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(max_codepoint=0x7F), max_size=60),
    st.builds(
        lambda text, times: text * times, st.text(min_size=1, max_size=4), st.integers(1, 5000)
    ),
    st.sampled_from(
        ["", "\x00", "a\x00b", "\r\n", "../../etc/passwd", "%00", "%ff", "\u202e\ufeff", "😀" * 40]
    ),
)


def as_wsgi(text: str) -> str:
    """What a WSGI server puts in environ for a header sent as UTF-8: its bytes as
    latin-1."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


ip_like = st.one_of(
    st.ip_addresses().map(str),
    st.builds(lambda ip, scope: f"{ip}%{scope}", st.ip_addresses(v=6), st.text(max_size=10)),
    st.sampled_from(
        [
            "",
            "not-an-ip",
            "127.0.0.1",
            " 198.51.100.7",
            "198.51.100.7, 10.0.0.1",
            "198.51.100.256",
            "::1",
            "fe80::1%eth0",
            "::ffff:198.51.100.7",
            "1.2.3.4\x00",
            "unix:/run/gunicorn.sock",
        ]
    ),
    junk,
)
hosts = st.one_of(
    st.sampled_from(["testserver", "testserver:80", "TESTSERVER", "testserver."]),
    st.sampled_from(["", "evil.example", "test server", "[::1", "testserver:x", "a" * 300]),
    junk,
)
header_values = {
    "HTTP_HOST": hosts,
    "REMOTE_ADDR": ip_like,
    "HTTP_X_FORWARDED_FOR": ip_like,
    "HTTP_X_FORWARDED_PROTO": st.sampled_from(["https", "http", "", "https, http"]) | junk,
    "HTTP_USER_AGENT": junk,
    "HTTP_REFERER": st.sampled_from(["http://[", "https://testserver/x", "//", "javascript:1"])
    | junk,
    "HTTP_ORIGIN": st.sampled_from(["null", "https://testserver", "http://["]) | junk,
    "HTTP_COOKIE": st.sampled_from(["csrftoken=", "csrftoken=" + "x" * 64, "a=b; ; =;"]) | junk,
    "HTTP_ACCEPT_LANGUAGE": junk,
    "HTTP_IF_NONE_MATCH": junk,
}


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    # Mostly the right host, so that most requests get past the host check to the views.
    chosen = draw(st.lists(st.sampled_from(sorted(header_values)), unique=True, max_size=6))
    values = {name: as_wsgi(draw(header_values[name])) for name in chosen}
    if "HTTP_HOST" in values and draw(st.integers(0, 3)):
        del values["HTTP_HOST"]
    return values


form_keys = st.one_of(
    st.sampled_from(
        [
            "email",
            "first_name",
            "topics",
            "website",
            "action",
            "csrfmiddlewaretoken",
            "List-Unsubscribe",
        ]
    ),
    junk,
)
known_values = st.sampled_from(
    ["ann@example.com", "ANN@EXAMPLE.COM", "resend", "One-Click", "1", "-1", "0", "9" * 30, "1\x00"]
)
form_values = st.one_of(known_values, st.emails().map(str), junk)
form_pairs = st.one_of(
    st.lists(st.tuples(form_keys, form_values), max_size=8),
    # One field repeated, past Django's DATA_UPLOAD_MAX_NUMBER_FIELDS (1000) at times.
    st.builds(
        lambda key, value, times: [(key, value)] * times,
        form_keys,
        known_values | st.text(max_size=10),
        st.integers(0, 1500),
    ),
)
plausible_forms = st.fixed_dictionaries(
    {},
    optional={
        "email": st.emails().map(str) | known_values | junk,
        "first_name": st.just("Ann") | junk,
        "topics": st.one_of(
            # Numbers, as the checkboxes send: some past 64 bits, which no column holds.
            st.lists(
                st.sampled_from(["1", "2", str(2**63), str(-(2**63) - 1)]) | st.integers().map(str),
                max_size=3,
            ),
            st.lists(st.sampled_from(["", "0", "x", "1.0", " 1"]) | junk, max_size=3),
        ),
        "website": st.just("") | junk,
        "action": st.just("resend") | junk,
        "List-Unsubscribe": st.just("One-Click") | junk,
    },
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
content_types = st.one_of(
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-16",
            "application/x-www-form-urlencoded; charset=bogus",
            MULTIPART_CONTENT,
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=other",
            "application/json",
            "text/plain",
            "application/octet-stream",
            "",
        ]
    ),
    junk,
)


def break_utf8(data: bytes, at: int) -> bytes:
    at = at % (len(data) + 1)
    return data[:at] + b"\xff\xfe\xc3" + data[at:]


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """A body and the content type it is sent with, which may not match."""
    kind = draw(
        st.sampled_from(
            [
                "none",
                "plausible form",
                "plausible form",
                "form",
                "bad utf-8 form",
                "multipart",
                "broken multipart",
                "json",
                "bytes",
            ]
        )
    )
    content_type = draw(content_types)
    if kind == "none":
        return b"", content_type
    if kind == "plausible form":
        # The fields the forms expect, with values from good to bad: gets past the
        # form validation into the services often.
        return urlencode(draw(plausible_forms), doseq=True).encode(), FORM
    if kind == "bytes":
        return draw(st.binary(max_size=4000)), content_type
    if kind == "json":
        return json.dumps(draw(json_values)).encode(), draw(
            st.just("application/json") | content_types
        )
    pairs = draw(form_pairs)
    if kind in ("form", "bad utf-8 form"):
        data = urlencode(pairs).encode()
        if kind == "bad utf-8 form":
            data = break_utf8(data, draw(st.integers(0, 10_000)))
        return data, draw(st.just("application/x-www-form-urlencoded") | content_types)
    data = encode_multipart(BOUNDARY, dict(pairs))
    if kind == "broken multipart":
        data = data[: draw(st.integers(0, len(data)))] + draw(st.binary(max_size=200))
    return data, draw(st.just(MULTIPART_CONTENT) | content_types)


# A token is described, not made, so that a failing example reads well:
#   ("valid here", role): genuine, for the page it is opened on,
#   ("valid", role, purpose), ("text", junk), ("mutated", role, purpose, at, char),
#   ("swapped", role, purpose): the victim's payload under role's signature,
#   ("other key", role, purpose): signed with another SECRET_KEY,
#   ("voided", role, purpose): signed by us with an old secret.
purposes = st.sampled_from(list(Purpose))
roles = st.sampled_from(ROLES)
forged_tokens = st.one_of(
    st.tuples(st.just("text"), junk),
    st.tuples(st.just("mutated"), roles, purposes, st.integers(0, 200), st.characters()),
    st.tuples(st.just("swapped"), roles, purposes),
    st.tuples(st.just("other key"), roles, purposes),
    st.tuples(st.just("voided"), roles, purposes),
)
tokens = st.one_of(
    st.tuples(st.just("valid here"), roles),
    st.tuples(st.just("valid"), roles, purposes),
    forged_tokens,
)


@dataclass(frozen=True)
class People:
    """A subscriber in each state, and the victim whose address must never leak."""

    by_role: dict[str, Subscriber]

    @classmethod
    def create(cls) -> "People":
        Status = Subscriber.Status
        statuses = {
            "pending": Status.PENDING,
            "active": Status.ACTIVE,
            "unsubscribed": Status.UNSUBSCRIBED,
            "bounced": Status.BOUNCED,
        }
        by_role = {
            role: Subscriber.objects.create(email=f"{role}@example.com", status=status)
            for role, status in statuses.items()
        }
        by_role["victim"] = Subscriber.objects.create(email=VICTIM_EMAIL, status=Status.ACTIVE)
        return cls(by_role)

    def token(self, spec: tuple, page: str) -> str:
        kind, *args = spec
        if kind == "valid here":
            return make_token(self.by_role[args[0]], Purpose(page))
        if kind == "text":
            return args[0]
        role, purpose = args[0], args[1]
        subscriber = self.by_role[role]
        token = make_token(subscriber, purpose)
        if kind == "valid":
            return token
        if kind == "mutated":
            at, char = args[2] % len(token), args[3]
            if char == token[at]:
                char = "B" if char == "A" else "A"
            return token[:at] + char + token[at + 1 :]
        if kind == "swapped":
            victim = self.by_role["victim"]
            payload = signing.b64_encode(f'[{victim.pk},"{victim.secret}"]'.encode()).decode()
            return payload + token[token.index(":") :]
        salt = f"advances.newsletter.{purpose}"
        if kind == "other key":
            return signing.dumps(
                [subscriber.pk, subscriber.secret], key="an-attackers-guess", salt=salt
            )
        assert kind == "voided"
        return signing.dumps([subscriber.pk, "an-old-secret"], salt=salt)


@contextmanager
def fresh_state() -> Iterator[People]:
    """Each example starts from the same data and leaves nothing behind (a savepoint,
    rolled back), so a failing example replays, and shrinks, the same way."""
    with transaction.atomic():
        cache.clear()  # rate limits would otherwise answer 429 before the views run
        mail.outbox.clear()
        yield People.create()
        transaction.set_rollback(True)


def token_path(page: str, token: str, safe: str) -> str:
    return f"/newsletter/{page}/{quote(token, safe=safe)}/"


paths = st.one_of(
    st.tuples(st.just("page"), st.sampled_from(PAGES)),
    st.tuples(
        st.just("token"), st.sampled_from(TOKEN_PAGES), tokens, st.sampled_from(["", "/", ":"])
    ),
)


def send(
    client: Client, method: str, path: str, body: bytes, content_type: str, **extra
) -> HttpResponseBase:
    response = client.generic(method, path, body, content_type=as_wsgi(content_type), **extra)
    exc_info = getattr(response, "exc_info", None)
    assert response.status_code < 500, (
        f"{method} {path} answered {response.status_code}: {exc_info and exc_info[1]!r}"
    )
    return response


# --- Properties ----------------------------------------------------------------------------


@settings(FUZZ, max_examples=500)
@given(
    method=st.sampled_from(["GET", "POST"]) | st.sampled_from(METHODS),
    where=paths,
    query=st.one_of(st.just(""), junk.map(lambda text: "?" + quote(text, safe="=&"))),
    body=bodies(),
    extra=headers(),
    secure=st.booleans(),
    enforce_csrf=st.sampled_from([False, False, True]),
)
# A body past DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB).
@example(
    method="POST",
    where=("page", "/newsletter/subscribe/"),
    query="",
    body=(b"email=" + b"a" * 3_000_000, FORM),
    extra={},
    secure=False,
    enforce_csrf=False,
)
def test_no_public_url_answers_5xx_whatever_it_is_sent(
    db, django_capture_on_commit_callbacks, method, where, query, body, extra, secure, enforce_csrf
):
    client = Client(raise_request_exception=False, enforce_csrf_checks=enforce_csrf)
    # Emails are queued on commit: run them, so that what a request stored is also sent.
    with fresh_state() as people, django_capture_on_commit_callbacks(execute=True):
        if where[0] == "page":
            path = where[1]
        else:
            _, page, spec, safe = where
            path = token_path(page, people.token(spec, page), safe)
        send(client, method, path + query, *body, secure=secure, **extra)


@settings(FUZZ, max_examples=300)
@given(
    page=st.sampled_from(["subscribe", *TOKEN_PAGES]),
    role=roles,
    form=plausible_forms,
    multipart=st.booleans(),
)
@example(page="subscribe", role="active", form={"topics": [str(2**63)]}, multipart=False)
def test_no_form_answers_5xx_whatever_its_fields_say(
    db, django_capture_on_commit_callbacks, page, role, form, multipart
):
    """Every form that takes a POST, reached with a genuine link, and sent the fields it
    expects with values from good to garbage."""
    if multipart:
        body, content_type = encode_multipart(BOUNDARY, form), MULTIPART_CONTENT
    else:
        body, content_type = urlencode(form, doseq=True).encode(), FORM
    with fresh_state() as people, django_capture_on_commit_callbacks(execute=True):
        if page == "subscribe":
            path = reverse("newsletter:subscribe")
        else:
            path = reverse(f"newsletter:{page}", args=[people.token(("valid here", role), page)])
        response = send(Client(raise_request_exception=False), "POST", path, body, content_type)
    assert response.status_code in (200, 302, 400, 409, 410)


client_headers = st.fixed_dictionaries(
    {},
    optional={
        name: header_values[name]
        for name in (
            "REMOTE_ADDR",
            "HTTP_X_FORWARDED_FOR",
            "HTTP_USER_AGENT",
            "HTTP_REFERER",
            "HTTP_COOKIE",
            "HTTP_ACCEPT_LANGUAGE",
        )
    },
).map(lambda values: {name: as_wsgi(value) for name, value in values.items()})


@settings(FUZZ, max_examples=300)
@given(
    action=st.sampled_from(["signup", *TOKEN_PAGES]),
    email=st.emails().map(str) | st.just("new@example.com"),
    first_name=st.just("Ann") | junk,
    extra=client_headers,
)
def test_consent_is_recorded_whatever_the_client_headers_say(
    main_topic, django_capture_on_commit_callbacks, action, email, first_name, extra
):
    """The requests that write the consent log (signup, confirm, unsubscribe,
    preferences), well-formed but for what the client's headers say: IP, user agent,
    referer, cookies. Never a 5xx, and a valid request always has its effect."""
    Status = Subscriber.Status
    client = Client(raise_request_exception=False)
    with fresh_state() as people, django_capture_on_commit_callbacks(execute=True):
        if action == "signup":
            form = {"email": email, "first_name": first_name, "topics": [main_topic.pk]}
            body = urlencode(form, doseq=True).encode()
            response = send(client, "POST", "/newsletter/subscribe/", body, FORM, **extra)
            assert response.status_code in (302, 400)
            return
        subscriber = people.by_role["pending" if action == "confirm" else "active"]
        if action == "preferences":
            form = {"first_name": first_name, "topics": [main_topic.pk]}
        else:
            form = {"List-Unsubscribe": "One-Click"} if action == "unsubscribe" else {}
        path = reverse(f"newsletter:{action}", args=[make_token(subscriber, Purpose(action))])
        response = send(client, "POST", path, urlencode(form, doseq=True).encode(), FORM, **extra)

        if response.status_code == 400:  # only a first name the form refuses
            assert action == "preferences"
            assert response.context["form"].errors["first_name"]
            return
        assert response.status_code == 200
        subscriber.refresh_from_db()
        expected = {"confirm": Status.ACTIVE, "unsubscribe": Status.UNSUBSCRIBED}
        assert subscriber.status == expected.get(action, Status.ACTIVE)
        event = subscriber.consent_events.get()
        assert event.kind == action
        assert event.ip_address is None or ipaddress.ip_address(event.ip_address)


@settings(FUZZ, max_examples=250)
@given(
    page=st.sampled_from(TOKEN_PAGES),
    spec=st.one_of(
        st.tuples(st.just("valid"), st.just("victim"), purposes),
        st.tuples(st.just("text"), junk),
        st.tuples(
            st.just("mutated"), st.just("victim"), purposes, st.integers(0, 200), st.characters()
        ),
        # The victim's payload under someone else's signature.
        st.tuples(st.just("swapped"), st.sampled_from(ROLES[:-1]), purposes),
        st.tuples(st.just("other key"), st.just("victim"), purposes),
        st.tuples(st.just("voided"), st.just("victim"), purposes),
    ),
    safe=st.sampled_from(["", ":"]),
    method=st.sampled_from(METHODS),
    body=bodies(),
)
@example(
    page="preferences",
    spec=("valid", "victim", Purpose.UNSUBSCRIBE),
    safe="",
    method="GET",
    body=(b"", ""),
)
@example(
    page="preferences",
    spec=("valid", "victim", Purpose.CONFIRM),
    safe="",
    method="POST",
    body=(b"", ""),
)
@example(
    page="unsubscribe",
    spec=("valid", "victim", Purpose.PREFERENCES),
    safe="",
    method="POST",
    body=(b"", ""),
)
@example(
    page="preferences",
    spec=("swapped", "active", Purpose.PREFERENCES),
    safe="",
    method="GET",
    body=(b"", ""),
)
def test_wrong_purpose_or_forged_tokens_never_show_or_change_another_subscriber(
    db, page, spec, safe, method, body
):
    # The victim's own link for this page is theirs to use.
    assume(not (spec[0] == "valid" and spec[2] == page))
    with fresh_state() as people:
        victim = people.by_role["victim"]
        path = token_path(page, people.token(spec, page), safe)

        response = send(Client(raise_request_exception=False), method, path, *body)

        shown = response.content + str(response.headers).encode()
        assert VICTIM_EMAIL.encode() not in shown
        victim.refresh_from_db()
        assert victim.status == Subscriber.Status.ACTIVE
        assert not victim.consent_events.exists()


@settings(FUZZ, max_examples=100)
@given(
    host=st.one_of(
        st.sampled_from(
            ["evil.example", "", "test server", "[::1", "testserver:x", "a" * 300, "x@testserver"]
        ),
        junk.filter(lambda host: host.lower().rstrip(".").split(":")[0] != "testserver"),
    ),
    path=st.sampled_from([*PAGES, "/newsletter/confirm/x/", "/no-such-page/"]),
    method=st.sampled_from(METHODS),
)
def test_a_host_header_not_allowed_is_answered_400(db, host, path, method):
    client = Client(raise_request_exception=False)
    response = send(client, method, path, b"", "", HTTP_HOST=as_wsgi(host))
    assert response.status_code == 400


# --- ESP webhooks ------------------------------------------------------------------------

WEBHOOK_SECRET = "fuzz-hooks:a-long-random-password"
MAILGUN_KEY = "fuzz-mailgun-signing-key"
WEBHOOK_PATHS = sorted(
    f"/anymail/{pattern.pattern}" for pattern in webhooks.tracking_webhook_urls()
)
DELIVERY = "<delivery>"  # replaced by a real Delivery's id when the request is sent

event_words = st.sampled_from(
    [
        "Bounce",
        "SpamComplaint",
        "Delivery",
        "SubscriptionChange",
        "Open",
        "HardBounce",
        "SoftBounce",
        "Transient",
        "ManualSuppression",
        "failed",
        "delivered",
        "complained",
        "unsubscribed",
        "rejected",
        "permanent",
        "temporary",
        "bounce",
    ]
)
times = st.one_of(
    st.sampled_from(
        ["2026-11-25T17:25:40Z", "2026-11-25T17:25:40", "9999-12-31T23:59:59-05:00", "", "9" * 30]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    junk,
)
addresses = st.sampled_from(["active@example.com", VICTIM_EMAIL, "ACTIVE@example.com"]) | junk
metadata = st.one_of(
    st.dictionaries(
        st.sampled_from(["delivery", "issue", "anymail_id"]) | junk,
        st.sampled_from([DELIVERY, "0", "-1", str(2**63), "1e3", "٣"]) | junk,
        max_size=3,
    ),
    json_values,
)
postmark_events = st.fixed_dictionaries(
    {},
    optional={
        "RecordType": event_words | junk,
        "Type": event_words | junk,
        "Email": addresses,
        "Recipient": addresses,
        "BouncedAt": times,
        "DeliveredAt": times,
        "ChangedAt": times,
        "ID": st.integers() | junk,
        "MessageID": junk,
        "Metadata": metadata,
        "Details": junk,
        "SuppressSending": st.booleans() | json_values,
        "SuppressionReason": event_words | junk,
    },
)
mailgun_event_data = st.fixed_dictionaries(
    {},
    optional={
        "event": event_words | junk,
        "severity": event_words | junk,
        "reason": event_words | junk,
        "recipient": addresses,
        "timestamp": times,
        "user-variables": metadata,
        "delivery-status": json_values | st.fixed_dictionaries({"message": junk}),
        "message": json_values
        | st.fixed_dictionaries(
            {"headers": st.fixed_dictionaries({"message-id": junk, "to": addresses})}
        ),
    },
)


@st.composite
def webhook_requests(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """A webhook path, and an ESP-shaped event for it with fields from good to garbage
    (a Mailgun one correctly signed at times, so that it gets past the signature), or
    anything at all to any ESP's path."""
    kind = draw(st.sampled_from(["postmark", "mailgun signed", "mailgun", "anything"]))
    if kind == "anything":
        return (draw(st.sampled_from(WEBHOOK_PATHS)), *draw(bodies()))
    event: dict[str, Any]
    if kind == "postmark":
        event = draw(postmark_events)
    else:
        token, timestamp = draw(junk), draw(st.text(max_size=12))
        signature = hmac.new(
            MAILGUN_KEY.encode(), f"{timestamp}{token}".encode("utf-8", "replace"), "sha256"
        ).hexdigest()
        block: Any = draw(json_values)
        if kind == "mailgun signed":
            block = {"token": token, "timestamp": timestamp, "signature": signature}
        event = {"signature": block, "event-data": draw(mailgun_event_data)}
    path = f"/anymail/{kind.split()[0]}/tracking/"
    content_type = draw(st.just("application/json") | content_types)
    return (
        draw(st.just(path) | st.sampled_from(WEBHOOK_PATHS)),
        json.dumps(event).encode(),
        content_type,
    )


GOOD_AUTH = "Basic " + base64.b64encode(WEBHOOK_SECRET.encode()).decode()
basic_auths = st.one_of(
    st.just(GOOD_AUTH),
    st.just("Basic " + base64.b64encode(b"fuzz-hooks:wrong").decode()),
    junk,
)


@settings(FUZZ, max_examples=400)
@given(
    method=st.sampled_from(["POST"] * 8 + METHODS),
    request=webhook_requests(),
    auth=st.sampled_from([GOOD_AUTH] * 4 + [None]) | basic_auths,
    extra=headers(),
)
def test_no_esp_webhook_answers_5xx_whatever_it_is_sent(
    db, django_capture_on_commit_callbacks, method, request, auth, extra
):
    """Every ESP's tracking webhook, signed or not, with payloads shaped like the ESP's
    events and garbage: never a 5xx, and no event touches a subscriber unless the
    request carried the secret."""
    path, data, content_type = request
    if auth is not None:
        extra = {**extra, "HTTP_AUTHORIZATION": as_wsgi(auth)}
    esp_settings = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}
    with (
        override_settings(ANYMAIL={**django_settings.ANYMAIL, **esp_settings}),
        fresh_state() as people,
        django_capture_on_commit_callbacks(execute=True),
    ):
        active = people.by_role["active"]
        issue = Issue.objects.create(subject="Fuzz", slug="fuzz", status=Issue.Status.SENT)
        delivery = Delivery.objects.create(issue=issue, subscriber=active, status="sent")
        data = data.replace(DELIVERY.encode(), str(delivery.pk).encode())
        response = send(
            Client(raise_request_exception=False), method, path, data, content_type, **extra
        )
        event(f"{path.split('/')[2]}: {response.status_code}")
        event(f"events recorded: {DeliveryEvent.objects.count()}")
        if auth != GOOD_AUTH:
            assert not DeliveryEvent.objects.exists()
            assert Subscriber.objects.filter(status="active").count() == 2
