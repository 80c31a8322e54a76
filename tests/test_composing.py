import pytest
from django.test.signals import template_rendered

from newsletter import composing
from newsletter.models import Issue
from tests.factories import EducationPieceFactory, IssueFactory

pytestmark = pytest.mark.django_db

VALUES = composing.recipient_values(
    first_name="Ann <b>",
    unsubscribe_url="https://advances.test/newsletter/unsubscribe/TOKEN-U/",
    preferences_url="https://advances.test/newsletter/preferences/TOKEN-P/",
)


@pytest.mark.parametrize(
    "dangerous",
    [
        "<script>alert(1)</script>",
        '<img src="x.png" alt="x" onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">click</a>',
        '<iframe src="https://evil.example"></iframe>',
        '<p style="background:url(javascript:alert(1))" onclick="x()">hi</p>',
    ],
)
def test_markdown_sanitiser_removes_scripts_handlers_and_javascript_urls(dangerous):
    cleaned = composing.markdown_to_html(dangerous).lower()
    for marker in ("<script", "onerror", "onclick", "javascript:", "<iframe", "style="):
        assert marker not in cleaned


def test_markdown_sanitiser_keeps_safe_markdown():
    cleaned = composing.markdown_to_html(
        "### Questions\n\n**Ask** your *doctor*:\n\n- one\n- two\n\n"
        "[Our page](https://example.org/page) or call [us](tel:+16082666400).\n\n"
        "![A nurse with a patient](https://example.org/nurse.png)"
    )
    assert "<h3>Questions</h3>" in cleaned
    assert "<strong>Ask</strong>" in cleaned
    assert "<li>one</li>" in cleaned
    assert 'href="https://example.org/page"' in cleaned
    assert 'href="tel:+16082666400"' in cleaned
    assert 'alt="A nurse with a patient"' in cleaned


def test_images_without_alt_text_are_counted():
    assert composing.images_without_alt("![](https://x/a.png) ![ ](https://x/b.png)") == 2
    assert composing.images_without_alt('<img src="https://x/c.png">') == 1
    assert composing.images_without_alt("![A chart](https://x/d.png)") == 0


@pytest.fixture
def issue(main_topic):
    pieces = [
        EducationPieceFactory(title="First piece", body="Alpha body."),
        EducationPieceFactory(
            title="Second piece", body="Beta body.", cta_label="Call us", cta_url="tel:+16082666400"
        ),
        EducationPieceFactory(title="Third piece", body="Gamma body."),
    ]
    return IssueFactory(subject="Second opinions", preheader="Worth the time", with_pieces=pieces)


def test_rendered_issue_carries_placeholders_postal_address_links_and_pieces_in_order(
    issue, settings
):
    rendered = composing.render_issue(issue)

    for part in (rendered.html, rendered.text):
        for name in ("salutation", "unsubscribe_url", "preferences_url"):
            assert f"[[advances.{name}" in part
        assert settings.NEWSLETTER_POSTAL_ADDRESS in part
        assert "/newsletter/archive/" in part  # view in browser
        assert part.index(
            "First piece".upper() if part is rendered.text else "First piece"
        ) < part.index("Second piece".upper() if part is rendered.text else "Second piece")
    assert (
        rendered.html.index("Alpha body")
        < rendered.html.index("Beta body")
        < rendered.html.index("Gamma body")
    )
    assert "Call us: tel:+16082666400" in rendered.text
    assert "Worth the time" in rendered.html  # the hidden preheader
    assert 'role="presentation"' in rendered.html
    assert '<html lang="en"' in rendered.html
    assert 'name="color-scheme"' in rendered.html
    assert "<h1" in rendered.html
    assert "<h2" in rendered.html


def test_css_is_inlined_and_nothing_is_loaded_from_elsewhere(issue):
    rendered = composing.render_issue(issue)
    assert 'style="' in rendered.html
    assert "<link" not in rendered.html
    assert "@import" not in rendered.html


def test_personalise_fills_each_placeholder_and_markup_in_a_name_cannot_inject(issue):
    personal = composing.render_issue(issue).personalise(VALUES)

    assert "[[advances." not in personal.html + personal.text
    assert "Hello Ann b," in personal.html
    assert "Hello Ann b," in personal.text
    assert "<b>" not in personal.html.split("Hello", 1)[1][:20]
    assert 'href="https://advances.test/newsletter/unsubscribe/TOKEN-U/"' in personal.html
    assert "Unsubscribe: https://advances.test/newsletter/unsubscribe/TOKEN-U/" in personal.text
    assert "https://advances.test/newsletter/preferences/TOKEN-P/" in personal.html


def test_placeholders_convert_to_an_esp_merge_syntax(issue):
    mailgun = composing.render_issue(issue).in_esp_syntax("%recipient.{}%")
    assert "%recipient.unsubscribe_url%" in mailgun.html
    assert "%recipient.salutation%" in mailgun.text
    assert "[[advances." not in mailgun.html


def test_issue_renders_once_per_version_however_many_recipients(issue):
    rendered_templates = []

    def record(sender, template, **kwargs):
        rendered_templates.append(template.name)

    template_rendered.connect(record)
    try:
        rendered = composing.render_issue(Issue.objects.get(pk=issue.pk))
        personal = [
            composing.render_issue(Issue.objects.get(pk=issue.pk)).personalise(VALUES)
            for _ in range(200)
        ]
    finally:
        template_rendered.disconnect(record)
    assert rendered_templates.count("newsletter/emails/issue.html") == 1
    assert len(personal) == 200
    assert rendered is composing.render_issue(issue)


def test_a_changed_piece_is_a_new_version(issue):
    before = composing.render_issue(issue)
    piece = issue.pieces.get(title="First piece")
    piece.body = "Changed body."
    piece.save()
    after = composing.render_issue(Issue.objects.get(pk=issue.pk))
    assert "Changed body." in after.html
    assert "Changed body." not in before.html


def test_reading_grade_flags_hard_text():
    easy = "We can help. Call us today. Ask your doctor."
    hard = (
        "Multidisciplinary oncological consultation facilitates individualized therapeutic "
        "decision-making incorporating histopathological characterization."
    )
    assert composing.reading_grade(easy) <= composing.READING_GRADE_TARGET
    assert composing.reading_grade(hard) > composing.READING_GRADE_TARGET
