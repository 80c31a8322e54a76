"""Reader-facing content: the home page from the pieces, the archive and its feed."""

import io
from xml.etree import ElementTree

import pytest
from django.core.management import call_command
from django.utils import timezone

from newsletter.models import Issue
from tests.factories import EducationPieceFactory, IssueFactory

pytestmark = pytest.mark.django_db


def test_home_page_shows_the_seeded_second_opinion_pieces_in_order(client, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())

    content = client.get("/").content.decode()

    titles = [
        "Why a second opinion is worth the time",
        "A treatment plan that fits your cancer",
        "Your doctors expect you to ask",
        "What to look for in a cancer center",
        "How to ask us for a second opinion",
    ]
    positions = [content.index(title) for title in titles]
    assert positions == sorted(positions)
    assert "Another radiation oncologist" in content
    assert "(608) 266-6400" in content
    assert 'href="tel:+16082666400"' in content
    assert 'action="/newsletter/subscribe/"' in content


def test_home_page_leaves_out_pieces_without_a_home_position(client):
    EducationPieceFactory(title="On the page", home_position=1)
    EducationPieceFactory(title="Only in emails", home_position=None)
    content = client.get("/").content.decode()
    assert "On the page" in content
    assert "Only in emails" not in content


@pytest.mark.parametrize("status", ["draft", "scheduled", "sending", "paused", "cancelled"])
def test_unsent_issues_are_not_public(client, main_topic, status):
    issue = IssueFactory(status=status)
    assert client.get(f"/newsletter/archive/{issue.slug}/").status_code == 404
    assert issue.subject not in client.get("/newsletter/archive/").content.decode()


def test_sent_issue_is_readable_in_the_browser_and_listed_newest_first(client, main_topic):
    older = IssueFactory(
        subject="Older issue", status="sent", sent_at=timezone.now() - timezone.timedelta(days=30)
    )
    newer = IssueFactory(
        subject="Newer issue",
        status="sent",
        sent_at=timezone.now(),
        with_pieces=[EducationPieceFactory(title="A piece", body="Body **text**.")],
    )

    listing = client.get("/newsletter/archive/").content.decode()
    assert listing.index("Newer issue") < listing.index("Older issue")
    page = client.get(f"/newsletter/archive/{newer.slug}/")
    assert page.status_code == 200
    assert "<strong>text</strong>" in page.content.decode()
    assert "[[advances." not in page.content.decode()
    assert client.get(f"/newsletter/archive/{older.slug}/").status_code == 200


def test_archive_feed_is_valid_atom_with_sent_issues_only(client, main_topic):
    sent = IssueFactory(subject="Sent one", status="sent", sent_at=timezone.now())
    IssueFactory(subject="Draft one", status=Issue.Status.DRAFT)

    response = client.get("/newsletter/archive/feed/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    root = ElementTree.fromstring(response.content)  # noqa: S314 (our own feed)
    atom = "{http://www.w3.org/2005/Atom}"
    titles = [entry.find(f"{atom}title").text for entry in root.findall(f"{atom}entry")]
    assert titles == ["Sent one"]
    link = root.find(f"{atom}entry/{atom}link").get("href")
    assert link.endswith(f"/newsletter/archive/{sent.slug}/")
