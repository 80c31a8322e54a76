"""Live preview while editing: what the editor typed, rendered by the same composing code
as the send, with the reading-level figures; the email served to its iframes under its
own narrow policy, and only to the editor who rendered it."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from newsletter import composing
from newsletter.models import EducationPiece, Issue
from tests.factories import EducationPieceFactory, IssueFactory, UserFactory

pytestmark = pytest.mark.django_db

ISSUE_URL = "admin:newsletter_issue_live_preview"
PIECE_URL = "admin:newsletter_educationpiece_live_preview"


@pytest.fixture
def editor(client: Client) -> Client:
    client.force_login(UserFactory.create(groups=["Editors"]))
    return client


def issue_form(issue: Issue | None = None, **fields: str) -> dict[str, str]:
    data = {
        "subject": "Second opinions",
        "slug": "second-opinions",
        "preheader": "Why ask",
        "intro": "Welcome to this issue.",
        "issue_pieces-TOTAL_FORMS": "0",
    }
    if issue is not None:
        data.update(subject=issue.subject, slug=issue.slug, preheader=issue.preheader)
        data["intro"] = issue.intro
        for n, item in enumerate(issue.issue_pieces.order_by("position")):
            data[f"issue_pieces-{n}-piece"] = str(item.piece_id)
            data[f"issue_pieces-{n}-position"] = str(item.position)
    data.update(fields)
    return data


def document_of(client: Client, partial: str) -> str:
    src = re.search(r'<iframe [^>]*sandbox src="([^"]+)"', partial)
    assert src, partial
    return src.group(1)


def test_the_preview_shows_what_was_typed_before_it_is_saved(editor):
    first, second = EducationPieceFactory(title="Why ask"), EducationPieceFactory(title="How")
    data = issue_form(intro="Typed **just now**.")
    data.update({
        "issue_pieces-0-piece": str(second.pk), "issue_pieces-0-position": "2",
        "issue_pieces-1-piece": str(first.pk), "issue_pieces-1-position": "1",
    })  # fmt: skip

    response = editor.post(reverse(ISSUE_URL), data)
    partial = response.content.decode()

    assert response.status_code == 200
    assert "Typed just now." in partial  # the text part
    assert "Reading level" in partial
    assert "Words" in partial
    email = editor.get(document_of(editor, partial))
    html = email.content.decode()
    assert "<strong>just now</strong>" in html
    assert html.index("Why ask") < html.index(">How<")
    assert not Issue.objects.exists()  # nothing was saved


def test_the_preview_is_the_same_rendering_as_the_send(editor, main_topic):
    issue = IssueFactory(with_pieces=[EducationPieceFactory(body="Plain words. Short ones.")])
    partial = editor.post(reverse(ISSUE_URL), issue_form(issue)).content.decode()
    previewed = editor.get(document_of(editor, partial)).content.decode()
    values = composing.preview_values(first_name="")
    assert previewed == composing.render_issue(issue).personalise(values).html


def test_a_hard_piece_shows_its_grade_and_images_without_alt(editor):
    body = (
        "Multidisciplinary oncological consultation necessitates comprehensive "
        "histopathological reevaluation of diagnostic specimens.\n\n![](https://x.org/a.png)"
    )
    data = {"title": "Second opinions", "summary": "Why.", "body": body, "cta_url": "javascript:x"}
    partial = editor.post(reverse(PIECE_URL), data).content.decode()
    assert "⚠" in partial
    assert re.search(r"Images without alt text</dt><dd class=\"live-warning\">1</dd>", partial)
    html = editor.get(document_of(editor, partial)).content.decode()
    assert "javascript:" not in html
    assert not EducationPiece.objects.exists()


def test_the_email_document_has_its_own_narrow_policy(editor):
    partial = editor.post(reverse(ISSUE_URL), issue_form()).content.decode()
    response = editor.get(document_of(editor, partial))
    policy = response["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'self'" in policy
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_another_person_cannot_open_someone_elses_preview(editor):
    partial = editor.post(reverse(ISSUE_URL), issue_form()).content.decode()
    other = Client()
    other.force_login(UserFactory.create(groups=["Editors"]))
    assert other.get(document_of(editor, partial)).status_code == 404


def test_the_change_forms_carry_the_panel_and_keep_the_strict_policy(editor, main_topic):
    issue = IssueFactory()
    for url in [
        reverse("admin:newsletter_issue_change", args=[issue.pk]),
        reverse("admin:newsletter_issue_add"),
        reverse("admin:newsletter_educationpiece_add"),
    ]:
        response = editor.get(url)
        html = response.content.decode()
        assert response.status_code == 200, url
        assert 'class="live-preview-panel"' in html
        assert 'src="/static/newsletter/live_preview.js"' in html
        assert "Markdown help" in html
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]


def test_the_preview_takes_only_a_post_from_someone_who_may_edit(editor, client):
    assert editor.get(reverse(ISSUE_URL)).status_code == 405
    reader = Client()
    reader.force_login(UserFactory.create(groups=["Clinical reviewers"]))
    assert reader.post(reverse(ISSUE_URL), issue_form()).status_code == 403


def test_garbage_in_the_form_still_previews(editor):
    data = issue_form(subject="x" * 5000, intro="<script>alert(1)</script>")
    data["issue_pieces-0-piece"] = "not-a-number"
    data["issue_pieces-1-piece"] = "999999"
    response = editor.post(reverse(ISSUE_URL), data)
    assert response.status_code == 200
    html = editor.get(document_of(editor, response.content.decode())).content.decode()
    assert "<script>alert" not in html
