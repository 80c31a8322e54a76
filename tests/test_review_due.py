"""Education content re-reviewed on schedule: the weekly email to the Clinical
reviewers, the badge on the admin index, the list filter and the re-review action."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from newsletter import approval, review_due, sending, tasks
from newsletter.models import EducationPiece, add_months
from project.celery import app as celery_app
from tests.factories import EducationPieceFactory, IssueFactory, UserFactory, approve

pytestmark = pytest.mark.django_db


def days_from_today(days):
    return timezone.localdate() + timedelta(days=days)


@pytest.fixture
def reviewer():
    return UserFactory(groups=[approval.REVIEWERS_GROUP], username="rita", first_name="Rita")


@pytest.fixture
def pieces(db):
    return {
        "overdue": EducationPieceFactory(title="Overdue piece", review_due=days_from_today(-3)),
        "soon": EducationPieceFactory(title="Due soon piece", review_due=days_from_today(20)),
        "later": EducationPieceFactory(title="Later piece", review_due=days_from_today(90)),
    }


def test_the_weekly_email_lists_pieces_due_within_30_days_to_the_reviewers(reviewer, pieces):
    UserFactory(groups=["Editors"], username="eddie")

    tasks.send_reviews_due.delay()

    [message] = mail.outbox
    assert message.to == ["rita@example.org"]
    assert "Overdue piece" in message.body
    assert "OVERDUE since" in message.body
    assert "Due soon piece" in message.body
    assert "Later piece" not in message.body
    assert "/admin/newsletter/educationpiece/?review=due-soon" in message.body
    html = message.alternatives[0][0]
    assert "Due soon piece" in str(html)


def test_no_weekly_email_when_nothing_is_due(reviewer):
    EducationPieceFactory(review_due=days_from_today(60))
    assert review_due.send_reminder() == 0
    assert not mail.outbox


def test_the_weekly_email_is_on_the_beat_schedule_and_the_transactional_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["newsletter-reviews-due"]
    assert entry["task"] == "newsletter.tasks.send_reviews_due"
    assert entry["schedule"].day_of_week == {1}  # weekly, on Mondays
    route = celery_app.amqp.router.route({}, "newsletter.tasks.send_reviews_due")
    assert route["queue"].name == "transactional"
    assert settings.CELERY_BEAT_SCHEDULE["newsletter-series"]["task"] == (
        "newsletter.tasks.run_series"
    )


def test_the_admin_index_shows_how_many_pieces_are_overdue(client, reviewer, pieces):
    client.force_login(reviewer)
    page = client.get(reverse("admin:index")).content.decode()
    assert "1</strong> education piece is overdue for review" in page
    assert "?review=overdue" in page
    assert "1 piece falls due within 30 days" in page


def test_the_admin_index_shows_no_badge_when_nothing_is_due(client, reviewer):
    client.force_login(reviewer)
    assert 'id="review-due"' not in client.get(reverse("admin:index")).content.decode()


def test_the_list_filter_shows_overdue_and_due_soon_pieces(client, reviewer, pieces):
    client.force_login(reviewer)
    url = reverse("admin:newsletter_educationpiece_changelist")
    overdue = client.get(url, {"review": "overdue"}).content.decode()
    soon = client.get(url, {"review": "due-soon"}).content.decode()
    assert "Overdue piece" in overdue
    assert "Due soon piece" not in overdue
    assert "Due soon piece" in soon
    assert "Later piece" not in soon


def test_a_reviewer_records_a_re_review_and_the_piece_can_be_sent_again(
    client, reviewer, pieces, main_topic, subscriber_factory, django_capture_on_commit_callbacks
):
    subscriber_factory(topics=[main_topic])
    piece = pieces["overdue"]
    issue = IssueFactory(with_pieces=[piece])
    with pytest.raises(approval.ApprovalMissing):
        approve(issue)
    client.force_login(reviewer)
    response = client.post(
        reverse("admin:newsletter_educationpiece_changelist"),
        {"action": "record_rereview", "_selected_action": [piece.pk]},
        follow=True,
    )
    assert "Re-review recorded for 1 pieces, by Rita" in response.content.decode()
    piece.refresh_from_db()
    today = timezone.localdate()
    assert piece.reviewed_on == today
    assert piece.review_due == add_months(today, settings.NEWSLETTER_REVIEW_MONTHS)
    assert piece.reviewed_by == "Rita"
    assert piece.last_edited_by is None  # a re-review is not an edit

    approve(issue)
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.start_issue(issue_id=issue.pk) == 1


def test_only_clinical_reviewers_may_record_a_re_review(client, pieces):
    client.force_login(UserFactory(groups=["Editors"]))
    piece = pieces["overdue"]
    client.post(
        reverse("admin:newsletter_educationpiece_changelist"),
        {"action": "record_rereview", "_selected_action": [piece.pk]},
    )
    assert EducationPiece.objects.get(pk=piece.pk).review_due == days_from_today(-3)
