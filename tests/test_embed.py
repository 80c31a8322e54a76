"""The embed's endpoints through Django's test client: allowed and other origins, the
no-JavaScript path, the snippet, the admin's embed code and counts by source, the
embed_snippet command and the check of NEWSLETTER_EMBED_ORIGINS. In a real browser:
tests/test_embed_browser.py."""

from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse

from newsletter import checks, embed
from newsletter.models import ConsentEvent, Subscriber
from tests.factories import UserFactory

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


def test_snippet_carries_the_page_to_link_back_to_and_refuses_a_non_url():
    code = embed.snippet(source="second-opinion-page", page=PAGE + "/second-opinion/")

    assert f'name="return_to" value="{PAGE}/second-opinion/"' in code
    with pytest.raises(embed.InvalidPage):
        embed.snippet(source="second-opinion-page", page="javascript:alert(1)")


def test_a_json_signup_answers_in_the_language_asked_for(client, main_topic):
    response = client.post(
        reverse("newsletter:embed_subscribe_json"),
        {"email": "ana@example.com", "source": "pagina", "language": "es-MX"},
        HTTP_ORIGIN=PAGE,
    )

    assert response.json()["language"] == "es"
    assert Subscriber.objects.get(email="ana@example.com").language == "es"


@pytest.mark.parametrize(
    "body",
    [
        b"--x\r\nContent-Disposition: form-data; name=email\r\n\r\nann",
        b"\xff\xfe\x00garbage",
        b'{"email": "ann@example.com"}',
    ],
    ids=["broken-multipart", "binary", "json"],
)
def test_a_malformed_body_gets_a_4xx_never_a_500(client, body):
    content_type = "multipart/form-data; boundary=x" if body.startswith(b"--") else "text/plain"
    response = client.generic(
        "POST",
        reverse("newsletter:embed_subscribe_json"),
        body,
        content_type=content_type,
        HTTP_ORIGIN=PAGE,
    )

    assert 400 <= response.status_code < 500
    assert not Subscriber.objects.exists()


# --- Admin ------------------------------------------------------------------------------


def test_an_editor_gets_the_embed_code_in_the_admin(client, main_topic):
    client.force_login(UserFactory(groups=["Editors"]))
    topics = client.get(reverse("admin:newsletter_topic_changelist")).content.decode()
    assert reverse("admin:newsletter_embed_code") in topics

    page = client.get(
        reverse("admin:newsletter_embed_code"),
        {"source": "second-opinion-page", "language": "es", "page": PAGE + "/second-opinion/"},
    )

    assert page.status_code == 200
    code = page.context["code"]
    assert 'name="source" value="second-opinion-page"' in code
    assert 'data-language="es"' in code
    assert "connect-src" in page.content.decode()
    # Editors never see subscribers: the counts by source stay out of their reach.
    assert client.get(reverse("admin:newsletter_subscriber_by_source")).status_code == 403


def test_the_admin_refuses_a_page_whose_site_is_not_allowed(client):
    client.force_login(UserFactory(groups=["Editors"]))

    page = client.get(
        reverse("admin:newsletter_embed_code"),
        {"source": "second-opinion-page", "page": "https://elsewhere.example/page/"},
    )

    assert page.context["code"] == ""
    assert "https://elsewhere.example" in page.context["form"].errors["page"][0]


def test_the_embed_code_is_for_staff_only(client):
    response = client.get(reverse("admin:newsletter_embed_code"), {"source": "x"})

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_the_admin_counts_and_filters_subscribers_by_source(client, subscriber_factory):
    Status = Subscriber.Status
    subscriber_factory(email="a@example.com", source="second-opinion-page", status=Status.PENDING)
    subscriber_factory(email="b@example.com", source="second-opinion-page")
    subscriber_factory(email="c@example.com", source="second-opinion-page")
    subscriber_factory(email="d@example.com", source="website")
    subscriber_factory(email="e@example.com", source="website", status=Status.UNSUBSCRIBED)
    client.force_login(UserFactory(groups=["Publishers"]))

    counts = client.get(reverse("admin:newsletter_subscriber_by_source"))
    listed = client.get(
        reverse("admin:newsletter_subscriber_changelist"), {"source__exact": "website"}
    )

    rows = {
        row.source: (row.total, row.pending, row.active, row.left) for row in counts.context["rows"]
    }
    assert rows == {"second-opinion-page": (3, 1, 2, 0), "website": (2, 0, 1, 1)}
    assert "?source__exact=second-opinion-page" in counts.content.decode()
    assert {s.email for s in listed.context["cl"].result_list} == {"d@example.com", "e@example.com"}


# --- The command and the check ----------------------------------------------------------


def test_embed_snippet_prints_the_code_for_a_page():
    out, err = StringIO(), StringIO()

    call_command(
        "embed_snippet", "--source", "second-opinion-page", "--language", "es",
        "--page", PAGE + "/second-opinion/", stdout=out, stderr=err,
    )  # fmt: skip

    code = out.getvalue()
    assert code.startswith("<!-- Advances signup (second-opinion-page)")
    assert 'data-language="es"' in code
    assert f'value="{PAGE}/second-opinion/"' in code
    assert err.getvalue() == ""


def test_embed_snippet_warns_about_a_page_whose_site_is_not_allowed():
    err = StringIO()

    call_command(
        "embed_snippet", "--source", "p", "--page", "https://elsewhere.example/",
        stdout=StringIO(), stderr=err,
    )  # fmt: skip

    assert "https://elsewhere.example is not in NEWSLETTER_EMBED_ORIGINS" in err.getvalue()


@pytest.mark.parametrize(
    "arguments", [["--source", "Not A Name"], ["--source", "p", "--page", "www.example.org"]]
)
def test_embed_snippet_refuses_bad_arguments_clearly(arguments):
    with pytest.raises(CommandError):
        call_command("embed_snippet", *arguments, stdout=StringIO())


def test_the_check_names_malformed_embed_origins(settings):
    settings.NEWSLETTER_EMBED_ORIGINS = [
        PAGE,
        "https://www.example.org/",
        "www.example.org",
        "https://www.example.org/second-opinion/",
        "*",
    ]

    warnings = checks.check_embed_origins(None)

    assert [w.id for w in warnings] == ["newsletter.W004"] * 3
    named = " ".join(w.msg for w in warnings)
    assert "'www.example.org'" in named
    assert "'https://www.example.org/second-opinion/'" in named
    assert "'*'" in named
