"""The admin is Advances' own: its name in the header and title, and a start page per
role whose every count links to the filtered list of exactly what it counts."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from newsletter.models import Delivery, DeliveryEvent, Issue, Subscriber
from tests.factories import (
    EducationPieceFactory,
    IssueFactory,
    SubscriberFactory,
    UserFactory,
    approve,
)

pytestmark = pytest.mark.django_db

INDEX = "/admin/"


def logged_in(client: Client, *groups: str, **fields) -> tuple[Client, object]:
    user = UserFactory.create(groups=list(groups), **fields)
    client.force_login(user)
    return client, user


def figure_links(html: str) -> dict[str, tuple[str, int]]:
    """Label -> (link, count) of each start-page figure."""
    found = re.findall(
        r'<a href="([^"]+)"><span class="start-count">(\d+)</span> '
        r'<span class="start-label">([^<]+)</span></a>',
        html,
    )
    return {label: (url.replace("&amp;", "&"), int(count)) for url, count, label in found}


def listed(client: Client, url: str) -> int:
    page = client.get(url)
    assert page.status_code == 200, url
    assert "?e=1" not in page.get("Location", "")
    return page.context["cl"].result_count


def test_the_admin_is_branded_advances(client):
    staff, _ = logged_in(client, "Editors")
    html = staff.get(INDEX).content.decode()
    assert "Django administration" not in html
    assert '<div id="site-name"><a href="/admin/">Advances</a></div>' in html
    assert "<title>Start | Advances</title>" in html
    login = Client().get(reverse("admin:login")).content.decode()
    assert "Django administration" not in login


def test_an_editor_sees_their_drafts_and_pieces_due_each_linked(client):
    staff, editor = logged_in(client, "Editors")
    IssueFactory.create_batch(2, author=editor)
    IssueFactory(author=UserFactory())  # someone else's draft
    today = timezone.localdate()
    EducationPieceFactory(review_due=today - timedelta(days=1))
    EducationPieceFactory.create_batch(3, review_due=today + timedelta(days=10))

    html = staff.get(INDEX).content.decode()
    figures = figure_links(html)

    assert figures["Your drafts"][1] == 2
    assert figures["Pieces overdue for clinical review"][1] == 1
    assert figures["Pieces due for review within 30 days"][1] == 3
    for label, (url, count) in figures.items():
        assert listed(staff, url) == count, label
    assert "Sending" not in re.findall(r'<h2 id="start-\w+">([^<]+)</h2>', html)
    assert 'id="start-operator"' not in html  # who reads the list is not an editor's


def test_a_publisher_sees_ready_sending_and_the_last_outcomes_each_linked(client, main_topic):
    staff, _ = logged_in(client, "Publishers")
    approve(IssueFactory())
    IssueFactory()  # a draft not approved: not ready
    sending_now = IssueFactory(status=Issue.Status.SENDING, send_started_at=timezone.now())
    sent = IssueFactory(status=Issue.Status.SENT, sent_at=timezone.now())
    readers = SubscriberFactory.create_batch(3, topics=[main_topic])
    rows = [Delivery.objects.create(issue=sent, subscriber=r, status="sent") for r in readers]
    DeliveryEvent.objects.create(
        esp="mailgun", event_key="b1", kind="bounced", esp_event_type="bounced",
        delivery=rows[0], subscriber=readers[0], occurred_at=timezone.now(),
    )  # fmt: skip
    Delivery.objects.create(issue=sending_now, subscriber=readers[1], status="queued")

    html = staff.get(INDEX).content.decode()
    figures = figure_links(html)

    assert figures["Ready to send (approved drafts)"][1] == 1
    assert figures["Sending now"][1] == 1
    for label, (url, count) in figures.items():
        assert listed(staff, url) == count, label
    assert reverse("admin:newsletter_issue_progress", args=[sent.pk]) in html
    bounced = re.search(r'<a href="([^"]+)" class="start-inline needs-attention">1 bounced', html)
    assert bounced
    assert listed(staff, bounced.group(1).replace("&amp;", "&")) == 1
    assert "Time left" in html or "left." in html  # the issue sending now, with its estimate


def test_an_operator_sees_list_health_by_status_each_linked(client):
    staff, _ = logged_in(client, is_superuser=True)
    SubscriberFactory.create_batch(2)
    SubscriberFactory(status=Subscriber.Status.BOUNCED)
    old = SubscriberFactory.create_batch(2, status=Subscriber.Status.PENDING)
    Subscriber.objects.filter(pk=old[0].pk).update(created_at=timezone.now() - timedelta(days=10))

    html = staff.get(INDEX).content.decode()
    figures = figure_links(html)

    assert figures["Active"][1] == 2
    assert figures["Bounced"][1] == 1
    assert figures["Pending confirmation"][1] == 2
    assert figures["Pending for over a week"][1] == 1
    for label, (url, count) in figures.items():
        assert listed(staff, url) == count, label
    assert "No ESP event received yet" in html
    assert reverse("admin:newsletter_subscriber_health") in html


def test_the_start_page_keeps_the_strict_content_security_policy(client):
    staff, _ = logged_in(client, is_superuser=True)
    response = staff.get(INDEX)
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert not re.search(r"<script>(?!</script>)|style=", response.content.decode())
