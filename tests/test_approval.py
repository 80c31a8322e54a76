"""Rule 9: nothing is sent without a valid approval by a clinical reviewer who neither
wrote nor last edited it; any edit voids it; every send path refuses without it."""

from datetime import date, timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from newsletter import approval, sending
from newsletter.models import EducationPiece, Issue, IssuePiece
from tests.factories import EducationPieceFactory, IssueFactory, UserFactory, approve

pytestmark = pytest.mark.django_db


@pytest.fixture
def author():
    return UserFactory(groups=["Editors", approval.REVIEWERS_GROUP])


@pytest.fixture
def reviewer():
    return UserFactory(groups=[approval.REVIEWERS_GROUP], username="rita")


@pytest.fixture
def issue(main_topic, author, subscriber_factory):
    subscriber_factory.create_batch(2, topics=[main_topic])
    return IssueFactory(
        author=author, with_pieces=[EducationPieceFactory(title="Why", body="It helps.")]
    )


def approve_as(user, issue, **kwargs):
    return approval.review_issue(
        issue_id=issue.pk, reviewer=user, decision=approval.Decision.APPROVED, **kwargs
    )


def test_the_author_cannot_approve_their_own_issue(issue, author):
    with pytest.raises(approval.NotAllowedToApprove):
        approve_as(author, issue)
    assert not approval.approval_state(issue).valid


def test_the_last_editor_of_a_piece_cannot_approve(issue, reviewer):
    EducationPiece.objects.filter(pk=issue.pieces.get().pk).update(last_edited_by=reviewer)
    with pytest.raises(approval.NotAllowedToApprove):
        approve_as(reviewer, issue)


def test_a_superuser_is_no_exception(issue, author):
    author.is_superuser = True
    author.save()
    with pytest.raises(approval.NotAllowedToApprove):
        approve_as(author, issue)


def test_someone_outside_clinical_reviewers_cannot_approve(issue):
    with pytest.raises(approval.NotAllowedToApprove):
        approve_as(UserFactory(groups=["Publishers"]), issue)


def test_a_reviewer_approves_and_the_issue_can_be_sent(
    issue, reviewer, django_capture_on_commit_callbacks
):
    approve_as(reviewer, issue)
    assert approval.approval_state(issue).valid
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.start_issue(issue_id=issue.pk) == 2
    assert len(mail.outbox) == 2


@pytest.mark.parametrize("edit", ["subject", "piece", "topics", "language"])
def test_an_edit_after_approval_voids_it(issue, reviewer, topic, edit):
    approve_as(reviewer, issue)
    if edit == "subject":
        issue.subject = "Changed"
        issue.save()
    elif edit == "piece":
        piece = issue.pieces.get()
        piece.body = "It helps a lot."
        piece.save()
    elif edit == "topics":
        issue.topics.add(topic)
    else:
        issue.language = "es"
        issue.save()
    state = approval.approval_state(Issue.objects.get(pk=issue.pk))
    assert not state.valid
    assert "voided by an edit on" in state.explanation()
    with pytest.raises(approval.ApprovalMissing):
        sending.start_issue(issue_id=issue.pk)


def test_approving_a_version_the_reviewer_did_not_see_is_refused(issue, reviewer):
    seen = approval.fingerprint(issue)
    issue.subject = "Changed meanwhile"
    issue.save()
    with pytest.raises(approval.StaleVersion):
        approve_as(reviewer, issue, seen=seen)


def test_start_and_schedule_refuse_without_approval(issue):
    with pytest.raises(approval.ApprovalMissing):
        sending.start_issue(issue_id=issue.pk)
    with pytest.raises(approval.ApprovalMissing):
        sending.schedule_issue(issue_id=issue.pk, when=timezone.now() + timedelta(hours=1))
    issue.refresh_from_db()
    assert issue.status == Issue.Status.DRAFT
    assert not mail.outbox


def test_send_issue_command_refuses_without_approval(issue):
    # CommandError: manage.py prints it on stderr and exits with status 1.
    with pytest.raises(CommandError, match="Approval missing: Not approved yet"):
        call_command("send_issue", issue.slug, stdout=StringIO())
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.DRAFT


def test_the_periodic_task_does_not_start_a_voided_scheduled_issue(issue, reviewer):
    approve_as(reviewer, issue)
    sending.schedule_issue(issue_id=issue.pk, when=timezone.now() - timedelta(seconds=1))
    issue.refresh_from_db()
    issue.subject = "Edited after scheduling"
    issue.save()

    sending.run_periodic()

    issue.refresh_from_db()
    assert issue.status == Issue.Status.DRAFT
    assert "Not sent at its scheduled time" in issue.last_error
    assert "voided by an edit" in issue.last_error
    assert not mail.outbox


def test_the_periodic_task_starts_an_approved_scheduled_issue(
    issue, reviewer, django_capture_on_commit_callbacks
):
    approve_as(reviewer, issue)
    sending.schedule_issue(issue_id=issue.pk, when=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        sending.run_periodic()
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT
    assert len(mail.outbox) == 2


def test_without_required_approval_a_single_person_can_send(issue, settings):
    settings.NEWSLETTER_REQUIRE_APPROVAL = False
    assert sending.start_issue(issue_id=issue.pk) == 2


# --- Review due ---------------------------------------------------------------------------


def test_review_due_defaults_to_twelve_months_after_review(db):
    piece = EducationPieceFactory(reviewed_on=date(2024, 1, 31))
    assert piece.review_due == date(2025, 1, 31)


def test_an_overdue_piece_voids_the_approval_of_an_unsent_issue(issue, reviewer):
    approve_as(reviewer, issue)
    EducationPiece.objects.filter(pk=issue.pieces.get().pk).update(
        review_due=timezone.localdate() - timedelta(days=1)
    )
    state = approval.approval_state(issue)
    assert not state.valid
    assert "Why" in state.explanation()
    with pytest.raises(approval.ApprovalMissing):
        sending.start_issue(issue_id=issue.pk)


def test_an_overdue_piece_cannot_be_added_to_an_issue(client, issue):
    overdue = EducationPieceFactory(
        title="Old advice", review_due=timezone.localdate() - timedelta(days=1)
    )
    client.force_login(UserFactory(groups=["Editors"]))
    url = reverse("admin:newsletter_issue_change", args=[issue.pk])
    current = issue.issue_pieces.get()
    data = {
        "subject": issue.subject, "slug": issue.slug, "preheader": issue.preheader,
        "intro": issue.intro, "topics": [t.pk for t in issue.topics.all()],
        "issue_pieces-TOTAL_FORMS": "2", "issue_pieces-INITIAL_FORMS": "1",
        "issue_pieces-MIN_NUM_FORMS": "0", "issue_pieces-MAX_NUM_FORMS": "1000",
        "issue_pieces-0-id": current.pk, "issue_pieces-0-issue": issue.pk,
        "issue_pieces-0-position": "1", "issue_pieces-0-piece": current.piece_id,
        "issue_pieces-1-issue": issue.pk, "issue_pieces-1-position": "2",
        "issue_pieces-1-piece": overdue.pk,
    }  # fmt: skip
    response = client.post(url, data)
    assert response.status_code == 200
    assert "renew the review before adding it to an issue" in response.content.decode()
    assert not IssuePiece.objects.filter(piece=overdue).exists()


# --- The admin ----------------------------------------------------------------------------


def test_the_admin_refuses_to_send_and_says_who_can_approve(client, issue, reviewer):
    client.force_login(UserFactory(groups=["Publishers"]))
    url = reverse("admin:newsletter_issue_send", args=[issue.pk])
    response = client.post(url, {"action": "send"}, follow=True)
    page = response.content.decode()
    assert "Not approved yet" in page
    assert "rita" in page
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.DRAFT
    response = client.post(
        url, {"action": "schedule", "schedule": "1", "when": "2999-01-01T10:00"}, follow=True
    )
    assert "Not approved yet" in response.content.decode()
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.DRAFT


def test_a_reviewer_approves_from_the_queue_and_the_author_sees_comments(
    client, issue, reviewer, author
):
    client.force_login(reviewer)
    queue = client.get(reverse("admin:newsletter_issueforreview_changelist"))
    assert issue.subject in queue.content.decode()
    url = reverse("admin:newsletter_issueforreview_change", args=[issue.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "Reading level" in page.content.decode()
    seen = approval.fingerprint(issue)
    client.post(
        url, {"decision": "changes_requested", "comment": "Add a phone number.", "seen": seen}
    )
    client.post(url, {"decision": "approved", "comment": "", "seen": seen})
    assert approval.approval_state(issue).valid

    client.force_login(author)
    own = client.get(reverse("admin:newsletter_issue_change", args=[issue.pk])).content.decode()
    assert "Add a phone number." in own
    assert "Approved by rita" in own
    csv = client.get(reverse("admin:newsletter_issueforreview_history_csv", args=[issue.pk]))
    lines = csv.content.decode().splitlines()
    assert lines[0] == "issue,when,what,who,comment"
    assert any("Approved" in line and "rita" in line for line in lines)


def test_the_queue_shows_what_changed_since_a_voided_approval(client, issue, reviewer):
    approve(issue, reviewer)
    issue.intro = "A brand new sentence for readers."
    issue.save()
    client.force_login(reviewer)
    page = client.get(reverse("admin:newsletter_issueforreview_change", args=[issue.pk]))
    assert "+A brand new sentence for readers." in page.content.decode()


def test_the_publisher_sees_why_a_scheduled_issue_was_not_sent(client, issue, reviewer):
    approve_as(reviewer, issue)
    sending.schedule_issue(issue_id=issue.pk, when=timezone.now() - timedelta(seconds=1))
    issue.refresh_from_db()
    issue.intro = "Edited after scheduling."
    issue.save()
    sending.run_periodic()

    client.force_login(UserFactory(groups=["Publishers"]))
    for url in (
        reverse("admin:newsletter_issue_change", args=[issue.pk]),
        reverse("admin:newsletter_issue_send", args=[issue.pk]),
    ):
        page = client.get(url).content.decode()
        assert "Not sent at its scheduled time" in page, url
        assert "voided by an edit" in page, url
        assert "rita" in page, url  # who can approve it


def test_sending_after_a_hold_clears_the_reason(
    issue, reviewer, django_capture_on_commit_callbacks
):
    approve_as(reviewer, issue)
    sending.schedule_issue(issue_id=issue.pk, when=timezone.now() - timedelta(seconds=1))
    issue.refresh_from_db()
    issue.subject = "Edited"
    issue.save()
    sending.run_periodic()
    approve_as(reviewer, Issue.objects.get(pk=issue.pk))
    with django_capture_on_commit_callbacks(execute=True):
        sending.start_issue(issue_id=issue.pk)
    assert Issue.objects.get(pk=issue.pk).last_error == ""


def test_each_reviewer_sees_what_changed_since_they_last_saw_it(client, issue, reviewer):
    other = UserFactory(groups=[approval.REVIEWERS_GROUP], username="omar")
    approve_as(reviewer, issue)
    issue.intro = "First change."
    issue.save()
    approval.review_issue(
        issue_id=issue.pk, reviewer=other, decision=approval.Decision.CHANGES_REQUESTED,
        comment="Shorter, please.",
    )  # fmt: skip
    issue.intro = "Second change."
    issue.save()
    url = reverse("admin:newsletter_issueforreview_change", args=[issue.pk])

    client.force_login(reviewer)  # last saw the approved version, before both changes
    mine = client.get(url).content.decode()
    client.force_login(other)  # last saw the first change
    theirs = client.get(url).content.decode()

    assert "+Second change." in mine
    assert "-Welcome to this issue." in mine
    assert "-First change." in theirs
    assert "-Welcome to this issue." not in theirs
