"""The public pages as search engines, shared links and readers see them: a description
and Open Graph card of their own, the signup on the landing page's first screen, a
privacy note beside every signup form, and the privacy page with this deployment's
real retention figures."""

import re
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from newsletter.models import Subscriber
from newsletter.subscriptions import CONSENT_WORDING
from newsletter.tokens import Purpose, make_token
from tests.factories import IssueFactory

pytestmark = pytest.mark.django_db


def meta_of(content: str) -> dict[str, str]:
    """The page's <meta name|property=... content=...> values and its canonical link."""
    found = {
        key: unescape(value)
        for key, value in re.findall(
            r'<meta (?:name|property)="([^"]+)" content="([^"]*)"', content
        )
    }
    if canonical := re.search(r'<link rel="canonical" href="([^"]+)"', content):
        found["canonical"] = canonical.group(1)
    return found


@pytest.fixture
def public_paths(main_topic) -> list[str]:
    issue = IssueFactory(subject="Second opinions", preheader="Why another look helps.",
                         status="sent", sent_at=timezone.now())  # fmt: skip
    return [
        "/",
        reverse("newsletter:archive"),
        reverse("newsletter:archive_issue", args=[issue.slug]),
        reverse("newsletter:privacy"),
        reverse("newsletter:subscribe"),
    ]


def test_every_public_page_has_its_own_description_and_open_graph_card(
    client, settings, public_paths
):
    settings.SITE_URL = "https://news.example.org"
    descriptions = set()
    for path in public_paths:
        meta = meta_of(client.get(path).content.decode())
        url = f"https://news.example.org{path}"
        assert meta["canonical"] == url, path
        assert meta["og:url"] == url, path
        assert meta["og:title"], path
        assert len(meta["description"]) >= 20, path
        assert meta["og:description"] == meta["description"], path
        assert "robots" not in meta, path
        descriptions.add(meta["description"])
    assert len(descriptions) == len(public_paths)


def test_an_archived_issue_is_shared_as_an_article_with_its_subject_and_preheader(
    client, public_paths
):
    meta = meta_of(client.get(public_paths[2]).content.decode())
    assert (meta["og:type"], meta["og:title"], meta["description"]) == (
        "article",
        "Second opinions",
        "Why another look helps.",
    )


def test_pages_reached_from_a_personal_link_are_kept_out_of_search_engines(
    client, subscriber_factory
):
    ann = subscriber_factory(email="ann@example.com")
    page = client.get(
        reverse("newsletter:preferences", args=[make_token(ann, Purpose.PREFERENCES)])
    )
    meta = meta_of(page.content.decode())
    assert meta["robots"] == "noindex"
    assert "canonical" not in meta


def test_every_public_page_links_to_the_signup_from_its_header(client, public_paths):
    subscribe = reverse("newsletter:subscribe")
    for path in public_paths:
        header = client.get(path).content.decode().split("</header>")[0]
        assert f'href="{subscribe}"' in header, path


def test_every_signup_form_has_a_privacy_note_linked_to_the_privacy_page(client, public_paths):
    privacy = reverse("newsletter:privacy")
    for path in public_paths:
        content = client.get(path).content.decode()
        forms = re.findall(r'<form method="post" action="/newsletter/subscribe/".*?</form>',
                           content, re.S)  # fmt: skip
        if path != privacy:
            assert forms, path
        for form in forms:
            assert "never share the list" in form, path
            assert f'href="{privacy}"' in form, path


def test_landing_page_compact_signup_keeps_the_honeypot_and_the_default_topic(client, main_topic):
    content = client.get("/").content.decode()
    compact = re.search(r'<form [^>]*class="card signup-compact".*?</form>', content, re.S)
    assert compact is not None
    form = compact.group(0)
    assert 'name="website"' in form
    assert f'name="topics" value="{main_topic.pk}"' in form
    assert "checked" in form
    assert 'name="csrfmiddlewaretoken"' in form


def test_the_compact_signup_filled_in_by_a_bot_gets_the_same_answer_and_is_ignored(
    client, main_topic
):
    data = {"email": "bot@example.com", "topics": [main_topic.pk], "website": "spam"}
    human = client.post(reverse("newsletter:subscribe"), {**data, "email": "ann@example.com",
                                                          "website": ""})  # fmt: skip
    bot = client.post(reverse("newsletter:subscribe"), data)
    assert (bot.status_code, bot["Location"]) == (human.status_code, human["Location"])
    assert not Subscriber.objects.filter(email="bot@example.com").exists()
    assert Subscriber.objects.filter(email="ann@example.com").exists()


def test_privacy_page_states_this_deployments_retention_and_the_consent_wording(client, settings):
    settings.NEWSLETTER_PENDING_DAYS = 12
    settings.NEWSLETTER_CONSENT_DETAIL_DAYS = 90
    content = unescape(client.get(reverse("newsletter:privacy")).content.decode())
    assert "never confirmed is deleted after 12 days" in content
    assert "deleted after 90 days" in content
    assert str(CONSENT_WORDING) in content
    assert "Email me my data" in content
    assert "Erase my data" in content
    assert "unsubscribe link" in content
