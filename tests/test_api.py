"""The JSON API (/api/v1/): every endpoint with a write key, a read key, a revoked key
and no key; the key's life in the admin; the OpenAPI schema; bad input gets 400."""

import json

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from ninja.responses import NinjaJSONEncoder
from openapi_spec_validator import validate

from newsletter import api_keys
from newsletter.models import ApiKey, ConsentEvent, Subscriber
from newsletter.views.api import api
from tests.factories import IssueFactory, UserFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture
def keys(db) -> dict[str, str]:
    """One secret per kind of caller; "none" sends no Authorization header."""
    _, write = api_keys.create_api_key(name="patient-portal", scope=ApiKey.Scope.WRITE)
    _, read = api_keys.create_api_key(name="crm-reports", scope=ApiKey.Scope.READ)
    revoked_key, revoked = api_keys.create_api_key(name="old-crm", scope=ApiKey.Scope.WRITE)
    api_keys.revoke_api_key(api_key=revoked_key)
    return {"write": write, "read": read, "revoked": revoked, "none": ""}


def call(client: Client, method: str, path: str, secret: str, body=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
    kwargs = {"content_type": "application/json"} if body is not None else {}
    data = body if isinstance(body, str) or body is None else json.dumps(body)
    return getattr(client, method)(
        API + path, data=data, **kwargs, **headers, REMOTE_ADDR="203.0.113.9", **extra
    )


def assert_refused(response, caller: str) -> None:
    """401 with a Bearer challenge for no key and a revoked one (RFC 6750), 403 naming
    the missing scope for a read key."""
    challenge = response.get("WWW-Authenticate", "")
    assert challenge.startswith('Bearer realm="Advances API"'), challenge
    if caller == "read":
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in challenge
    else:
        assert response.status_code == 401
        assert ('error="invalid_token"' in challenge) == (caller == "revoked")
    assert response.json()["detail"]


def snapshot() -> list:
    """Everything a write could change."""
    people = list(
        Subscriber.objects.order_by("email").values_list("email", "status", "source", "language")
    )
    topics = list(Subscriber.topics.through.objects.order_by("pk").values_list("pk", "topic_id"))
    return [*people, *topics, ConsentEvent.objects.count()]


# --- Create ---------------------------------------------------------------------------


def test_write_key_adds_a_pending_reader_with_double_opt_in_and_the_key_as_source(
    client, keys, main_topic, topic, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = call(
            client,
            "post",
            "/subscribers",
            keys["write"],
            {
                "email": "Ann@Example.com",
                "first_name": "Ann",
                "topics": [topic.slug],
                "language": "es",
            },
            HTTP_USER_AGENT="Portal/2.1",
        )

    assert response.status_code == 202
    ann = Subscriber.objects.get(email="ann@example.com")
    assert (ann.status, ann.source, ann.language) == ("pending", "patient-portal", "es")
    assert list(ann.topics.all()) == [topic]
    signup = ann.consent_events.get(kind=ConsentEvent.Kind.SIGNUP)
    assert signup.source == "API key patient-portal"
    assert (signup.ip_address, signup.user_agent) == ("203.0.113.9", "Portal/2.1")
    assert "I can unsubscribe at any time" in signup.wording
    assert [message.to for message in mail.outbox] == [["ann@example.com"]]
    assert "/newsletter/confirm/" in mail.outbox[0].body


def test_creating_a_known_address_answers_exactly_as_a_new_one_and_keeps_it_active(
    client, keys, subscriber_factory, django_capture_on_commit_callbacks
):
    subscriber_factory(email="active@example.com", source="website")
    with django_capture_on_commit_callbacks(execute=True):
        known = call(client, "post", "/subscribers", keys["write"], {"email": "active@example.com"})
        new = call(client, "post", "/subscribers", keys["write"], {"email": "new@example.com"})

    assert (known.status_code, known.content) == (new.status_code, new.content)
    active = Subscriber.objects.get(email="active@example.com")
    assert (active.status, active.source) == ("active", "website")


@pytest.mark.parametrize("caller", ["read", "revoked", "none"])
def test_only_a_write_key_may_add_a_reader(client, keys, caller):
    before = snapshot()

    response = call(client, "post", "/subscribers", keys[caller], {"email": "ann@example.com"})

    assert_refused(response, caller)
    assert snapshot() == before
    assert mail.outbox == []


# --- Status ---------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["read", "write"])
def test_any_live_key_looks_up_a_readers_status_and_nothing_more(
    client, keys, subscriber_factory, main_topic, caller
):
    subscriber_factory(email="ann@example.com", first_name="Ann", language="es")

    response = call(client, "get", "/subscribers/status?email=ANN@example.com", keys[caller])

    assert response.status_code == 200
    assert response.json() == {
        "email": "ann@example.com",
        "status": "active",
        "language": "es",
        "topics": ["advances"],
    }


@pytest.mark.parametrize("caller", ["revoked", "none"])
def test_status_needs_a_live_key(client, keys, subscriber_factory, caller):
    subscriber_factory(email="ann@example.com")

    response = call(client, "get", "/subscribers/status?email=ann@example.com", keys[caller])

    assert_refused(response, caller)
    assert "ann@example.com" not in response.content.decode()


def test_status_of_an_unknown_address_is_404_and_of_a_bad_one_400(client, keys):
    unknown = call(client, "get", "/subscribers/status?email=nobody@example.com", keys["read"])
    bad = call(client, "get", "/subscribers/status?email=not-an-address", keys["read"])
    missing = call(client, "get", "/subscribers/status", keys["read"])

    assert unknown.status_code == 404
    assert bad.status_code == 400
    assert "email" in bad.json()["errors"]
    assert missing.status_code == 400
    assert "email" in missing.json()["errors"]


# --- Topics ---------------------------------------------------------------------------


def test_write_key_changes_topics_through_the_consent_log(
    client, keys, subscriber_factory, main_topic, topic
):
    ann = subscriber_factory(email="ann@example.com", first_name="Ann")

    response = call(
        client, "put", "/subscribers/topics", keys["write"],
        {"email": "ann@example.com", "topics": [topic.slug]},
    )  # fmt: skip

    assert response.status_code == 200
    assert response.json()["topics"] == [topic.slug]
    assert list(ann.topics.all()) == [topic]
    ann.refresh_from_db()
    assert ann.first_name == "Ann"
    event = ann.consent_events.get(kind=ConsentEvent.Kind.PREFERENCES)
    assert event.source == "API key patient-portal"
    assert event.detail == {"topics": [topic.slug]}


@pytest.mark.parametrize("caller", ["read", "revoked", "none"])
def test_only_a_write_key_may_change_topics(client, keys, subscriber_factory, topic, caller):
    subscriber_factory(email="ann@example.com")
    before = snapshot()

    response = call(
        client, "put", "/subscribers/topics", keys[caller],
        {"email": "ann@example.com", "topics": [topic.slug]},
    )  # fmt: skip

    assert_refused(response, caller)
    assert snapshot() == before


def test_topic_changes_refuse_unknown_topics_no_topics_and_former_readers(
    client, keys, subscriber_factory
):
    subscriber_factory(email="ann@example.com")
    subscriber_factory(email="gone@example.com", status=Subscriber.Status.UNSUBSCRIBED)
    before = snapshot()

    def put(email, topics):
        return call(
            client, "put", "/subscribers/topics", keys["write"], {"email": email, "topics": topics}
        )

    unknown_topic = put("ann@example.com", ["no-such-topic"])
    no_topics = put("ann@example.com", [])
    former = put("gone@example.com", ["advances"])
    nobody = put("nobody@example.com", ["advances"])

    assert unknown_topic.status_code == 400
    assert "topics" in unknown_topic.json()["errors"]
    assert no_topics.status_code == 400
    assert former.status_code == 409
    assert nobody.status_code == 404
    assert snapshot() == before


# --- Unsubscribe ----------------------------------------------------------------------


def test_write_key_unsubscribes_a_reader_at_once_and_idempotently(client, keys, subscriber_factory):
    ann = subscriber_factory(email="ann@example.com")

    first = call(client, "post", "/subscribers/unsubscribe", keys["write"], {"email": ann.email})
    again = call(client, "post", "/subscribers/unsubscribe", keys["write"], {"email": ann.email})

    assert first.json() == {"email": ann.email, "status": "unsubscribed", "changed": True}
    assert again.json() == {"email": ann.email, "status": "unsubscribed", "changed": False}
    event = ann.consent_events.get(kind=ConsentEvent.Kind.UNSUBSCRIBE)
    assert event.source == "API key patient-portal"


@pytest.mark.parametrize("caller", ["read", "revoked", "none"])
def test_only_a_write_key_may_unsubscribe(client, keys, subscriber_factory, caller):
    subscriber_factory(email="ann@example.com")
    before = snapshot()

    response = call(
        client, "post", "/subscribers/unsubscribe", keys[caller], {"email": "ann@example.com"}
    )

    assert_refused(response, caller)
    assert snapshot() == before


# --- Issues ---------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["read", "write", "revoked", "none"])
def test_sent_issues_are_listed_for_live_keys_only(client, keys, caller):
    IssueFactory(subject="Second opinions", slug="second-opinions", status="sent",
                 sent_at=timezone.now())  # fmt: skip
    IssueFactory(subject="Draft", slug="draft")

    response = call(client, "get", "/issues", keys[caller])

    if caller in ("revoked", "none"):
        assert_refused(response, caller)
        return
    assert response.status_code == 200
    [issue] = response.json()
    assert issue["subject"] == "Second opinions"
    assert issue["url"].endswith("/newsletter/archive/second-opinions/")


# --- Bad input, keys, rate limit --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"email": ', "__all__"),
        ("[1, 2]", None),
        ({"email": "ann@example.com", "admin": True}, "admin"),
        ({"email": "not-an-address"}, "email"),
        ({"email": "ann@example.com\r\nBcc: x@example.com"}, "email"),
        ({"email": 42}, "email"),
        ({"email": "ann@example.com", "language": "fr"}, "language"),
        ({"email": "ann@example.com", "topics": "advances"}, "topics"),
    ],
    ids=[
        "broken-json",
        "not-an-object",
        "unknown-field",
        "invalid-email",
        "header-injection",
        "number",
        "unknown-language",
        "topics-not-a-list",
    ],
)
def test_bad_requests_get_400_with_field_errors_and_change_nothing(client, keys, body, field):
    response = call(client, "post", "/subscribers", keys["write"], body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["detail"]
    if field and field != "__all__":
        assert field in answer["errors"], answer
    assert not Subscriber.objects.exists()


def test_a_key_records_its_last_use_and_stops_working_when_revoked(client, keys):
    portal = ApiKey.objects.get(name="patient-portal")
    assert portal.last_used_at is None

    assert call(client, "get", "/issues", keys["write"]).status_code == 200
    portal.refresh_from_db()
    assert portal.last_used_at is not None
    api_keys.revoke_api_key(api_key=portal)

    assert call(client, "get", "/issues", keys["write"]).status_code == 401


def test_keys_are_stored_hashed(keys):
    stored = list(ApiKey.objects.values_list("key_hash", "prefix"))
    assert all(secret not in str(stored) for secret in keys.values() if secret)
    assert all(len(key_hash) == 64 for key_hash, _ in stored)


def test_each_key_has_its_own_rate_limit(client, keys, settings):
    settings.NEWSLETTER_API_RATE = "2/m"

    answers = [call(client, "get", "/issues", keys["read"]) for _ in range(3)]
    other = call(client, "get", "/issues", keys["write"]).status_code

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60
    assert answers[-1].json()["detail"]
    assert other == 200


def test_refused_writes_count_against_the_keys_rate_limit(client, keys, settings):
    settings.NEWSLETTER_API_RATE = "2/m"
    write = {"email": "ann@example.com"}

    answers = [
        call(client, "post", "/subscribers", keys["read"], write).status_code for _ in range(3)
    ]

    assert answers == [403, 403, 429]


def test_a_key_over_its_limit_changes_nothing(client, keys, settings):
    settings.NEWSLETTER_API_RATE = "1/m"
    call(client, "get", "/issues", keys["write"])

    response = call(client, "post", "/subscribers", keys["write"], {"email": "ann@example.com"})

    assert response.status_code == 429
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


# --- Admin and schema -----------------------------------------------------------------


def test_staff_create_a_key_in_the_admin_see_it_once_and_revoke_it(client):
    client.force_login(UserFactory(is_superuser=True))

    created = client.post(
        reverse("admin:newsletter_apikey_add"), {"name": "patient-portal", "scope": "write"}
    )

    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    secret = created.context["secret"]
    assert secret in created.content.decode()
    api_key = ApiKey.objects.get(name="patient-portal")
    assert api_key.scope == "write"
    assert api_key.created_by is not None
    listing = client.get(reverse("admin:newsletter_apikey_changelist")).content.decode()
    assert "patient-portal" in listing
    assert secret not in listing
    assert (
        secret
        not in client.get(
            reverse("admin:newsletter_apikey_change", args=[api_key.pk])
        ).content.decode()
    )

    client.post(
        reverse("admin:newsletter_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [api_key.pk]},
    )

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert call(Client(), "get", "/issues", secret).status_code == 401


def test_the_openapi_schema_is_valid_openapi():
    schema = json.loads(json.dumps(api.get_openapi_schema(), cls=NinjaJSONEncoder))

    validate(schema)

    assert {"/api/v1/subscribers", "/api/v1/subscribers/status", "/api/v1/issues"} <= set(
        schema["paths"]
    )


def test_schema_and_docs_are_for_staff_only(client):
    assert client.get(API + "/openapi.json").status_code == 302
    assert client.get(API + "/docs").status_code == 302
    client.force_login(UserFactory())

    served = client.get(API + "/openapi.json")
    docs = client.get(API + "/docs")

    assert served.status_code == 200
    validate(served.json())
    assert docs.status_code == 200
    assert "swagger-ui" in docs.content.decode()
