"""The progress page and its JSON: each figure once, a time-left estimate while sending,
links to the readers behind each figure, and "Database unavailable, retrying" instead
of an error when the database does not answer."""

import re
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from newsletter.models import Delivery, DeliveryEvent, Issue
from newsletter.progress import time_left_text
from tests.factories import EducationPieceFactory, IssueFactory, SubscriberFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def issue(main_topic):
    return IssueFactory(
        status=Issue.Status.SENDING,
        # Started a minute ago, so the first count has a rate to estimate from.
        send_started_at=timezone.now() - timedelta(minutes=1),
        with_pieces=[EducationPieceFactory(title="Why", body="It can change a plan.")],
    )


@pytest.fixture
def rows(issue, main_topic):
    readers = SubscriberFactory.create_batch(6, topics=[main_topic])
    now = timezone.now()
    statuses = ["sent", "sent", "sent", "queued", "queued", "failed"]
    return [
        Delivery.objects.create(
            issue=issue,
            subscriber=reader,
            status=status,
            sent_at=now if status == "sent" else None,
        )
        for reader, status in zip(readers, statuses, strict=True)
    ]


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(UserFactory.create(groups=["Publishers"]))
    return client


def bounce(row: Delivery, n: int = 0) -> None:
    DeliveryEvent.objects.create(
        esp="mailgun", event_key=f"e{row.pk}-{n}", kind="bounced", esp_event_type="bounced",
        delivery=row, subscriber=row.subscriber, occurred_at=timezone.now(),
    )  # fmt: skip


def progress_url(issue: Issue) -> str:
    return reverse("admin:newsletter_issue_progress", args=[issue.pk])


def json_url(issue: Issue) -> str:
    return reverse("admin:newsletter_issue_progress_json", args=[issue.pk])


def test_each_esp_outcome_appears_once(staff, issue, rows):
    bounce(rows[0])
    bounce(rows[0], 1)  # reported twice, one reader
    html = staff.get(progress_url(issue)).content.decode()
    for label in ["Delivered", "Bounced (hard)", "Bounced (soft)", "Complained"]:
        assert html.count(f">{label}<") == 1, label
    assert re.search(r"Bounced \(hard\)</th><td><a [^>]+>1</a>", html)


def test_the_json_gives_the_figures_and_a_time_left_while_sending(staff, issue, rows):
    figures = staff.get(json_url(issue)).json()
    assert figures["live"] is True
    assert figures["done"] == 4
    assert figures["remaining"] == 2
    assert figures["seconds_left"] > 0
    assert figures["time_left"]
    assert {row["key"]: row["readers"] for row in figures["deliveries"]}["queued"] == 2


def test_a_finished_issue_shows_no_time_left(staff, issue, rows):
    Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENT)
    figures = staff.get(json_url(issue)).json()
    assert figures["seconds_left"] is None
    assert figures["time_left"] == ""


def test_each_figure_links_to_exactly_the_readers_behind_it(staff, issue, rows):
    bounce(rows[1])
    figures = staff.get(json_url(issue)).json()
    queued_url = next(r["url"] for r in figures["deliveries"] if r["key"] == "queued")
    bounced_url = next(r["url"] for r in figures["outcomes"] if r["key"] == "bounced")

    queued = staff.get(queued_url)
    bounced = staff.get(bounced_url)

    assert queued.status_code == bounced.status_code == 200
    assert set(queued.context["cl"].queryset) == {rows[3].subscriber, rows[4].subscriber}
    assert list(bounced.context["cl"].queryset) == [rows[1].subscriber]


def test_a_malformed_figure_filter_shows_the_whole_list(staff, rows):
    page = staff.get(reverse("admin:newsletter_subscriber_changelist") + "?delivery=x:nope")
    assert page.status_code == 200


def test_the_page_polls_its_json_with_a_script_file_not_inline(staff, issue, rows):
    html = staff.get(progress_url(issue)).content.decode()
    assert 'src="/static/newsletter/progress.js"' in html
    assert f'data-url="{json_url(issue)}"' in html
    assert not re.search(r"<script>(?!</script>)", html)
    assert 'http-equiv="refresh"' not in html


def refuse_queries(execute, sql, params, many, context):
    raise OperationalError("connection to server failed: Connection refused")


def test_database_down_the_json_says_unavailable_retrying(staff, issue, rows):
    with connection.execute_wrapper(refuse_queries):
        response = staff.get(json_url(issue))
    assert response.status_code == 503
    assert response.json()["message"] == "Database unavailable, retrying"
    assert response["Retry-After"]


def test_database_down_the_page_says_unavailable_retrying(staff, issue, rows):
    with connection.execute_wrapper(refuse_queries):
        response = staff.get(progress_url(issue))
    assert response.status_code == 503
    assert "Database unavailable, retrying" in response.content.decode()


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "not known"),
        (20, "Less than a minute"),
        (60 * 5 + 10, "About 5 minutes"),
        (3600 * 3, "About 3 hours"),
    ],
)
def test_time_left_reads_as_a_person_would_say_it(seconds, words):
    assert words in time_left_text(seconds)
