"""Leases kept alive while a batch is at the ESP, and answers kept through a database
outage (newsletter/leases.py), run inline against the real database. The worker tests
(test_failover.py) do the same with real workers, a real broker and a cut database."""

import io
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

from newsletter import leases, sending
from newsletter.models import Delivery, Issue
from tests.conftest import wait_until
from tests.factories import IssueFactory, SubscriberFactory, approve

# Transactional where a second thread or a cut connection must see committed rows.
durable_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def issue(main_topic):
    SubscriberFactory.create_batch(10, topics=[main_topic])
    return approve(IssueFactory(subject="Second opinions"))


@pytest.mark.django_db
def test_a_renewed_lease_keeps_its_rows_from_every_other_worker(issue):
    sending.start_issue(issue_id=issue.pk)
    claim, first = sending._claim(issue.pk, 5)
    # The ESP is slow: the lease taken at claim time has run out, but the worker lives.
    Delivery.objects.filter(claim=claim).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert leases.LeaseKeeper(claim).renew() == 5
    _, second = sending._claim(issue.pk, 10)

    assert len(second) == 5
    assert {r.delivery_id for r in first}.isdisjoint(r.delivery_id for r in second)


@durable_db
def test_the_keeper_renews_from_its_own_thread_while_the_batch_is_out(issue, monkeypatch):
    monkeypatch.setattr(sending, "_queue_lanes", lambda issue_id, rows: None)  # no inline lanes
    sending.start_issue(issue_id=issue.pk)
    claim, _ = sending._claim(issue.pk, 4)
    Delivery.objects.filter(claim=claim).update(lease_until=timezone.now() - timedelta(seconds=1))

    with leases.LeaseKeeper(claim, lease=timedelta(seconds=0.6)) as keeper:
        assert wait_until(lambda: keeper.renewals >= 2, timeout=10)
        _, others = sending._claim(issue.pk, 10)

    assert len(others) == 6  # not one of the kept four


@pytest.mark.django_db
def test_a_recorded_batch_is_not_renewed(issue):
    sending.start_issue(issue_id=issue.pk)
    claim, _ = sending._claim(issue.pk, 3)
    Delivery.objects.filter(claim=claim).update(status=Delivery.Status.SENT, lease_until=None)

    assert leases.LeaseKeeper(claim).renew() == 0
    assert not Delivery.objects.filter(claim=claim, lease_until__isnull=False).exists()


def test_an_action_is_retried_until_the_database_answers():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return "recorded"

    until = time.monotonic() + 30
    assert leases.through_outage(flaky, until=until, what="a test") == "recorded"
    assert len(calls) == 3


def test_an_action_gives_up_once_its_lease_is_over():
    def down():
        raise OperationalError("connection refused")

    with pytest.raises(OperationalError):
        leases.through_outage(down, until=time.monotonic(), what="a test")


@durable_db
def test_an_answer_the_database_missed_is_recorded_later_and_nobody_gets_it_twice(
    issue, settings, monkeypatch
):
    settings.NEWSLETTER_BATCH_SIZE = 10
    real_mark_sent = sending._mark_sent
    failures = []

    def database_away_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OperationalError("the database is restarting")
        return real_mark_sent(*args, **kwargs)

    monkeypatch.setattr(sending, "_mark_sent", database_away_once)
    sending.start_issue(issue_id=issue.pk)  # inline: the lane runs when the start commits

    assert failures == [1]
    assert len(mail.outbox) == 10
    assert len({message.to[0] for message in mail.outbox}) == 10
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 10
    assert not Delivery.objects.filter(maybe_duplicate=True).exists()


@durable_db
def test_send_issue_wait_rides_out_a_database_outage(issue, settings, monkeypatch):
    real_progress = sending.issue_progress
    outage = ["down", "down"]

    def progress_through_an_outage(issue):
        if outage:
            outage.pop()
            raise OperationalError("connection to server at 127.0.0.1 failed")
        return real_progress(issue)

    monkeypatch.setattr(sending, "issue_progress", progress_through_an_outage)
    out = io.StringIO()
    call_command("send_issue", issue.slug, "--wait", stdout=out)

    output = out.getvalue()
    assert "database unavailable, retrying" in output
    assert "The database is back" in output
    assert "The issue is sent." in output
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT
    assert len(mail.outbox) == 10


def test_send_issue_wait_shows_the_time_left():
    from newsletter.management.commands.send_issue import Command

    progress = sending.Progress(
        counts={"queued": 600, "sending": 0, "sent": 400, "failed": 0, "skipped": 0},
        total=1000,
        rate=5.0,
        maybe_duplicates=0,
    )
    line = Command.progress_line(progress)
    assert "400/1,000 (40%)" in line
    assert "about 2 min 00 s left" in line


@pytest.mark.django_db
def test_send_issue_wait_fails_when_the_send_ends_paused(issue, monkeypatch):
    from django.core.management.base import CommandError

    def pause_instead(*, issue_id):
        Issue.objects.filter(pk=issue_id).update(
            status=Issue.Status.PAUSED, last_error="Paused after repeated ESP errors"
        )
        return 10

    monkeypatch.setattr(sending, "start_issue", pause_instead)
    with pytest.raises(CommandError, match="paused"):
        call_command("send_issue", issue.slug, "--wait", stdout=io.StringIO())
