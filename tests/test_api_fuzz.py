"""Fuzzing the JSON API with Hypothesis: whatever a caller sends (any key or none, any
method on any endpoint, any body, any content type, any query string), the answer is
never a 5xx, always JSON, and a refused request changes nothing."""

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter import api_keys
from newsletter.models import ApiKey, ConsentEvent, Subscriber

pytestmark = pytest.mark.django_db

API = "/api/v1"
ENDPOINTS = [
    ("post", "/subscribers"),
    ("get", "/subscribers/status"),
    ("put", "/subscribers/topics"),
    ("post", "/subscribers/unsubscribe"),
    ("get", "/issues"),
]
METHODS = ["get", "post", "put", "patch", "delete"]
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any JSON value, nested.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
# Values an address field might really get: addresses, near-addresses and junk
# (NUL bytes, line breaks, very long text, lone surrogates are not JSON-encodable).
JUNK = ["\x00", "\r\nBcc: x@example.com", " ", "\u202e", "@"]
addresses = (
    st.emails()
    | st.text(max_size=300)
    | st.builds(
        lambda local, junk: f"{local}{junk}@example.com",
        st.text(max_size=20),
        st.sampled_from(JUNK),
    )
)
field_values = addresses | json_values
# Bodies shaped like the API's own, with any value in any field, and unknown fields.
shaped_bodies = st.fixed_dictionaries(
    {"email": field_values},
    optional={
        "first_name": field_values,
        "topics": st.lists(st.sampled_from(["advances", "no-such-topic", ""]) | st.text())
        | field_values,
        "language": st.sampled_from(["en", "es", "fr", "", "es-MX"]) | field_values,
        "extra": json_values,
    },
)  # fmt: skip
bodies = (
    shaped_bodies.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200)
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
)
query_strings = st.one_of(
    st.just(""),
    addresses.map(lambda email: "email=" + email.replace("&", "%26")),
    st.text(alphabet=string.printable, max_size=100),
)


@pytest.fixture
def keys(db) -> dict[str, str]:
    _, write = api_keys.create_api_key(name="patient-portal", scope=ApiKey.Scope.WRITE)
    _, read = api_keys.create_api_key(name="crm-reports", scope=ApiKey.Scope.READ)
    revoked_key, revoked = api_keys.create_api_key(name="old-crm", scope=ApiKey.Scope.WRITE)
    api_keys.revoke_api_key(api_key=revoked_key)
    return {"write": write, "read": read, "revoked": revoked}


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    settings.NEWSLETTER_API_RATE = "1000000/m"


def authorization(keys: dict[str, str]):
    return st.one_of(
        st.sampled_from([f"Bearer {secret}" for secret in keys.values()]),
        st.just(""),
        st.text(alphabet=string.printable, max_size=80),
        st.text(alphabet=string.printable, max_size=60).map(lambda text: "Bearer adv_" + text),
    )


def send(client, method, path, *, secret_header, body, content_type, query):
    headers = {"HTTP_AUTHORIZATION": secret_header} if secret_header else {}
    url = API + path + (f"?{query}" if query else "")
    return client.generic(
        method.upper(), url, body, content_type=content_type, REMOTE_ADDR="203.0.113.9", **headers
    )


def assert_answered_properly(response) -> None:
    assert response.status_code < 500, response.content[:500]
    if response.status_code == 405:  # django-ninja's own answer: the methods allowed
        assert response["Allow"]
        return
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    json.loads(response.content)


def test_any_request_to_any_endpoint_gets_no_5xx(client, keys, main_topic):
    @FUZZ
    @given(
        endpoint=st.sampled_from(ENDPOINTS),
        method=st.sampled_from(METHODS) | st.none(),
        secret_header=authorization(keys),
        body=bodies,
        content_type=content_types,
        query=query_strings,
    )
    def fuzz(endpoint, method, secret_header, body, content_type, query):
        own_method, path = endpoint
        response = send(
            client,
            method or own_method,
            path,
            secret_header=secret_header,
            body=body,
            content_type=content_type,
            query=query,
        )
        assert_answered_properly(response)

    fuzz()


def test_writes_with_any_body_and_a_write_key_get_no_5xx(client, keys, main_topic):
    @FUZZ
    @given(
        endpoint=st.sampled_from([e for e in ENDPOINTS if e[0] != "get"]),
        body=shaped_bodies.map(json.dumps),
    )
    def fuzz(endpoint, body):
        method, path = endpoint
        response = send(
            client,
            method,
            path,
            secret_header=f"Bearer {keys['write']}",
            body=body,
            content_type="application/json",
            query="",
        )
        assert_answered_properly(response)
        if response.status_code == 400:
            assert response.json()["errors"]

    fuzz()


def test_refused_callers_change_nothing_whatever_they_send(client, keys, subscriber_factory):
    subscriber_factory(email="ann@example.com")
    before = (Subscriber.objects.count(), ConsentEvent.objects.count())

    @FUZZ
    @given(
        endpoint=st.sampled_from([e for e in ENDPOINTS if e[0] != "get"]),
        caller=st.sampled_from(["read", "revoked", "none", "junk"]),
        body=shaped_bodies.map(json.dumps),
    )
    def fuzz(endpoint, caller, body):
        method, path = endpoint
        header = {"none": "", "junk": "Bearer adv_nope"}.get(caller, f"Bearer {keys.get(caller)}")
        response = send(
            client,
            method,
            path,
            secret_header=header,
            body=body,
            content_type="application/json",
            query="",
        )
        assert response.status_code in (401, 403)
        assert (Subscriber.objects.count(), ConsentEvent.objects.count()) == before

    fuzz()
