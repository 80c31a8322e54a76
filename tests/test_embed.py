"""The embed's endpoints through Django's test client: allowed and other origins, the
no-JavaScript path, and the snippet. (Browser tests for the embed are still to come.)"""

import pytest
from django.core import mail
from django.urls import reverse

from newsletter import embed
from newsletter.models import ConsentEvent, Subscriber

pytestmark = pytest.mark.django_db
PAGE = "http://127.0.0.1:8765"


@pytest.fixture(autouse=True)
def _allow(settings):
    settings.NEWSLETTER_EMBED_ORIGINS = [PAGE]


def test_allowed_origin_subscribes_a_pending_reader_with_the_embeds_source(
    client, main_topic, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("newsletter:embed_subscribe_json"),
            {"email": "ann@example.com", "source": "second-opinion-page", "language": "es"},
            HTTP_ORIGIN=PAGE,
        )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == PAGE
    assert "Access-Control-Allow-Credentials" not in response
    assert not response.cookies
    ann = Subscriber.objects.get(email="ann@example.com")
    assert (ann.status, ann.source, ann.language) == ("pending", "second-opinion-page", "es")
    signup = ann.consent_events.get(kind=ConsentEvent.Kind.SIGNUP)
    assert signup.source == f"embed second-opinion-page on {PAGE}"
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("origin", ["http://evil.example", "null", ""])
def test_any_other_origin_gets_403_and_changes_nothing(client, origin):
    extra = {"HTTP_ORIGIN": origin} if origin else {}
    answer = client.post(
        reverse("newsletter:embed_subscribe_json"), {"email": "ann@example.com"}, **extra
    )
    form = client.post(reverse("newsletter:embed_subscribe"), {"email": "ann@example.com"}, **extra)

    assert answer.status_code == 403
    assert answer.json()["error"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in answer
    assert form.status_code == 403
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


def test_preflight_answers_only_allowed_origins(client):
    url = reverse("newsletter:embed_subscribe_json")
    allowed = client.options(url, HTTP_ORIGIN=PAGE)
    other = client.options(url, HTTP_ORIGIN="http://evil.example")

    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Methods"] == "POST"
    assert other.status_code == 403


def test_no_javascript_path_ends_on_the_thank_you_page_with_a_link_back(
    client, main_topic, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("newsletter:embed_subscribe"),
            {"email": "ann@example.com", "source": "second-opinion-page"},
            HTTP_ORIGIN=PAGE,
            HTTP_REFERER=PAGE + "/second-opinion/",
        )

    assert response.status_code == 302
    page = client.get(response["Location"])
    assert f'href="{PAGE}/second-opinion/"' in page.content.decode()
    assert Subscriber.objects.get(email="ann@example.com").source == "second-opinion-page"
    forged = client.get(reverse("newsletter:embed_thanks"), {"from": "http://evil.example/"})
    assert "evil.example" not in forged.content.decode()


def test_snippet_is_small_and_points_at_advances():
    code = embed.snippet(source="second-opinion-page")

    assert len(code.encode()) < 10_000
    assert 'name="source" value="second-opinion-page"' in code
    assert 'aria-live="polite"' in code
    assert "style=" not in code
