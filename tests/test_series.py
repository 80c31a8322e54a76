"""Welcome series: each step reaches each reader of the topic once, in order, at its
time, through the same ledger and rules as issues; held without approval; unsubscribing
stops it; readers who join later start then. Tasks run inline here; the real worker
and fake ESP are in tests/test_series_worker.py."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from newsletter import approval, sending, series, subscriptions, tasks
from newsletter.models import Delivery, Issue, SeriesStep, WelcomeSeries
from newsletter.subscriptions import Origin
from tests.factories import EducationPieceFactory, SubscriberFactory, UserFactory, approve

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def editor():
    return UserFactory(groups=["Editors"], username="eddie")


@pytest.fixture
def reviewer():
    return UserFactory(groups=[approval.REVIEWERS_GROUP], username="rita")


@pytest.fixture
def welcome(main_topic, editor, reviewer):
    """A series on the main topic with steps on days 0, 2 and 5, all approved."""
    made = series.create_series(
        series=WelcomeSeries(name="Welcome", topic=main_topic, language="en")
    )
    for position, (days, subject) in enumerate(
        [(0, "Day zero"), (2, "Day two"), (5, "Day five")], start=1
    ):
        step = series.save_step(
            step=SeriesStep(
                series=made,
                position=position,
                delay_days=days,
                subject=subject,
                message=f"The {subject.lower()} message.",
                piece=EducationPieceFactory(title=f"Piece for {subject}"),
            ),
            editor=editor,
        )
        approve(step.issue, reviewer)
    return made


def subjects_to(address):
    return [m.subject for m in mail.outbox if address in m.to]


@pytest.fixture(autouse=True)
def _on_commit_runs(monkeypatch, django_capture_on_commit_callbacks):
    """Each test runs in one transaction that never commits: run what series queues
    after commit (the bulk lanes, inline) as a real commit would."""
    real = series.run_series

    def run_and_commit(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return real(**kwargs)

    monkeypatch.setattr(series, "run_series", run_and_commit)


def run_at(moment):
    with time_machine.travel(moment, tick=False):
        return series.run_series()


def test_each_step_reaches_a_new_reader_once_in_order_at_its_time(welcome, main_topic):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        reader = SubscriberFactory(topics=[main_topic])
    expected = {
        0: ["Day zero"],
        1: ["Day zero"],
        2: ["Day zero", "Day two"],
        4: ["Day zero", "Day two"],
        5: ["Day zero", "Day two", "Day five"],
        30: ["Day zero", "Day two", "Day five"],
    }
    for days, subjects in expected.items():
        run_at(start + days * DAY + timedelta(minutes=1))
        run_at(start + days * DAY + timedelta(minutes=2))  # a second run adds nothing
        assert subjects_to(reader.email) == subjects, f"day {days}"
    assert Delivery.objects.filter(subscriber=reader, status=Delivery.Status.SENT).count() == 3


def test_readers_on_the_topic_before_the_series_existed_do_not_get_it(main_topic, editor):
    before = SubscriberFactory(topics=[main_topic])
    made = series.create_series(series=WelcomeSeries(name="W", topic=main_topic))
    step = series.save_step(
        step=SeriesStep(series=made, delay_days=0, subject="Hello", message="Hi."), editor=editor
    )
    approve(step.issue)
    later = SubscriberFactory(topics=[])
    series.run_series()
    assert not mail.outbox
    later.topics.add(main_topic)  # joins the topic later: starts then

    series.run_series()

    assert subjects_to(later.email) == ["Hello"]
    assert not subjects_to(before.email)


def test_a_step_without_a_valid_approval_is_held_and_goes_out_once_approved(
    main_topic, editor, reviewer
):
    made = series.create_series(series=WelcomeSeries(name="W", topic=main_topic))
    step = series.save_step(
        step=SeriesStep(series=made, delay_days=0, subject="Hello", message="Hi."), editor=editor
    )
    reader = SubscriberFactory(topics=[main_topic])
    series.run_series()
    assert not mail.outbox
    issue = Issue.objects.get(pk=step.issue_id)
    assert issue.status == Issue.Status.DRAFT
    assert "Held: Not approved yet" in issue.last_error

    with pytest.raises(approval.NotAllowedToApprove):  # the editor wrote it
        approval.review_issue(
            issue_id=issue.pk, reviewer=editor, decision=approval.Decision.APPROVED
        )
    approve(issue, reviewer)
    series.run_series()

    assert subjects_to(reader.email) == ["Hello"]


def test_editing_a_step_holds_it_and_changes_only_what_readers_not_yet_sent_get(
    welcome, main_topic, editor, reviewer
):
    first = SubscriberFactory(topics=[main_topic])
    series.run_series()
    assert subjects_to(first.email) == ["Day zero"]
    step = welcome.steps.get(subject="Day zero")
    step.message = "A corrected welcome."
    series.save_step(step=step, editor=editor)
    second = SubscriberFactory(topics=[main_topic])

    series.run_series()
    assert not subjects_to(second.email)  # held: the edit voided the approval
    assert "voided by an edit" in Issue.objects.get(pk=step.issue_id).last_error

    approve(step.issue, reviewer)
    series.run_series()

    assert subjects_to(first.email) == ["Day zero"]  # not sent again
    [message] = [m for m in mail.outbox if second.email in m.to]
    assert "A corrected welcome." in message.body


def test_unsubscribing_stops_the_series_for_good(welcome, main_topic):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        reader = SubscriberFactory(topics=[main_topic])
    run_at(start + timedelta(minutes=1))
    subscriptions.unsubscribe(subscriber=reader, origin=Origin())
    run_at(start + 3 * DAY)
    reader.status = "active"  # back (e.g. a new double opt-in): the series stays stopped
    reader.save()
    run_at(start + 6 * DAY)
    assert subjects_to(reader.email) == ["Day zero"]
    assert welcome.enrolments.get(subscriber=reader).stopped_at is not None


def test_a_reader_of_another_language_gets_only_their_language_series(welcome, main_topic):
    spanish = SubscriberFactory(topics=[main_topic], language="es")
    series.run_series()
    assert not subjects_to(spanish.email)


def test_an_issue_path_cannot_send_a_series_step_to_the_whole_topic(welcome, main_topic):
    SubscriberFactory(topics=[main_topic])
    step = welcome.steps.first()
    with pytest.raises(sending.IssueStateError):
        sending.start_issue(issue_id=step.issue_id)
    assert not mail.outbox


def test_the_run_series_command_and_the_periodic_task_queue_due_steps(welcome, main_topic):
    reader = SubscriberFactory(topics=[main_topic])
    out = StringIO()
    call_command("run_series", stdout=out)
    assert "1 readers started" in out.getvalue()
    assert subjects_to(reader.email) == ["Day zero"]
    other = SubscriberFactory(topics=[main_topic])
    tasks.run_series.delay()
    assert subjects_to(other.email) == ["Day zero"]


def test_a_shorter_series_day_brings_later_steps_sooner(welcome, main_topic, settings):
    settings.NEWSLETTER_SERIES_DAY_SECONDS = 60
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        reader = SubscriberFactory(topics=[main_topic])
    run_at(start + timedelta(seconds=1))
    run_at(start + timedelta(seconds=121))
    assert subjects_to(reader.email) == ["Day zero", "Day two"]


def test_series_emails_carry_the_list_headers_and_no_archive_link(welcome, main_topic):
    reader = SubscriberFactory(topics=[main_topic])
    series.run_series()
    [message] = mail.outbox
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/newsletter/unsubscribe/" in message.extra_headers["List-Unsubscribe"]
    assert "View this email in your browser" not in message.body
    assert f"Hello {reader.first_name}," in message.body


# --- The admin --------------------------------------------------------------------------


def test_an_editor_adds_a_series_with_steps_in_the_admin(client, editor, main_topic):
    piece = EducationPieceFactory(title="Why it matters")
    client.force_login(editor)
    data = {
        "name": "New readers", "topic": main_topic.pk, "language": "en", "is_active": "on",
        "steps-TOTAL_FORMS": "2", "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
        "steps-0-delay_days": "0", "steps-0-position": "1", "steps-0-subject": "Welcome",
        "steps-0-message": "Hello.", "steps-0-piece": "",
        "steps-1-delay_days": "3", "steps-1-position": "2", "steps-1-subject": "Why",
        "steps-1-message": "", "steps-1-piece": piece.pk,
    }  # fmt: skip
    response = client.post(reverse("admin:newsletter_welcomeseries_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    made = WelcomeSeries.objects.get(name="New readers")
    steps = list(made.steps.order_by("delay_days"))
    assert [s.subject for s in steps] == ["Welcome", "Why"]
    assert steps[1].issue.kind == Issue.Kind.SERIES_STEP
    assert list(steps[1].issue.pieces.all()) == [piece]
    assert steps[0].issue.author == editor
    # The reviewers' queue lists the new steps for approval.
    queue = approval.awaiting_review()
    assert {s.issue_id for s in steps} <= set(queue.values_list("pk", flat=True))


def test_a_step_with_an_overdue_piece_or_no_content_is_refused(client, editor, main_topic):
    overdue = EducationPieceFactory(
        title="Old advice", review_due=timezone.localdate() - timedelta(days=1)
    )
    client.force_login(editor)
    data = {
        "name": "New readers", "topic": main_topic.pk, "language": "en", "is_active": "on",
        "steps-TOTAL_FORMS": "2", "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
        "steps-0-delay_days": "0", "steps-0-position": "1", "steps-0-subject": "Old",
        "steps-0-message": "", "steps-0-piece": overdue.pk,
        "steps-1-delay_days": "1", "steps-1-position": "2", "steps-1-subject": "Empty",
        "steps-1-message": "", "steps-1-piece": "",
    }  # fmt: skip
    response = client.post(reverse("admin:newsletter_welcomeseries_add"), data)
    page = response.content.decode()
    assert response.status_code == 200
    assert "renew the review before adding it" in page
    assert "Give the step an education piece, a short message, or both." in page
    assert not WelcomeSeries.objects.exists()


def test_the_series_page_shows_per_step_waiting_sent_skipped_failed(
    client, welcome, main_topic, editor
):
    SubscriberFactory.create_batch(2, topics=[main_topic])
    leaver = SubscriberFactory(topics=[main_topic])
    series.run_series()
    step = welcome.steps.get(subject="Day zero")
    Delivery.objects.filter(issue_id=step.issue_id, subscriber=leaver).update(
        status=Delivery.Status.SKIPPED
    )
    client.force_login(editor)
    page = client.get(reverse("admin:newsletter_welcomeseries_change", args=[welcome.pk]))
    assert page.status_code == 200
    rows = {row.step.subject: row for row in page.context["step_progress"]}
    assert (rows["Day zero"].sent, rows["Day zero"].skipped, rows["Day zero"].waiting) == (
        2,
        1,
        0,
    )
    assert rows["Day two"].waiting == 3
    assert "Steps and readers" in page.content.decode()


def test_the_author_of_a_step_sees_the_reviewers_comments_on_the_series_page(
    client, welcome, editor, reviewer
):
    step = welcome.steps.get(subject="Day two")
    step.message = "Edited."
    series.save_step(step=step, editor=editor)
    approval.review_issue(
        issue_id=step.issue_id, reviewer=reviewer,
        decision=approval.Decision.CHANGES_REQUESTED, comment="Add the phone number.",
    )  # fmt: skip
    client.force_login(editor)
    page = client.get(reverse("admin:newsletter_welcomeseries_change", args=[welcome.pk]))
    text = page.content.decode()
    assert "Add the phone number." in text
    assert "voided by an edit" in text


def test_approving_a_step_in_the_review_queue_opens_it_at_once(
    client, main_topic, editor, reviewer
):
    made = series.create_series(series=WelcomeSeries(name="W", topic=main_topic))
    step = series.save_step(
        step=SeriesStep(series=made, delay_days=0, subject="Hello", message="Hi."), editor=editor
    )
    assert Issue.objects.get(pk=step.issue_id).status == Issue.Status.DRAFT
    client.force_login(reviewer)
    url = reverse("admin:newsletter_issueforreview_change", args=[step.issue_id])
    assert "Hello" in client.get(url).content.decode()
    client.post(
        url, {"decision": "approved", "comment": "", "seen": approval.fingerprint(step.issue)}
    )
    issue = Issue.objects.get(pk=step.issue_id)
    assert issue.status == Issue.Status.SENDING
    assert issue.last_error == ""
