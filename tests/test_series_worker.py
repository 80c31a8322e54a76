"""Welcome series on real Celery workers over a real Redis broker, through the real
Mailgun backend, to the fake ESP, with the clock moved forward (time-machine) in the
process that runs the series: each step reaches each reader once at its time;
unsubscribing mid-series stops the rest; a worker killed mid-step leaves nobody out."""

from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from newsletter import series, subscriptions, tasks
from newsletter.models import Delivery, SeriesStep, WelcomeSeries
from newsletter.subscriptions import Origin
from tests.conftest import wait_until
from tests.factories import SubscriberFactory, UserFactory, approve
from tests.test_delivery_worker import mailgun_env

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

DAY = timedelta(days=1)
STEPS = [(0, "Day zero"), (2, "Day two"), (5, "Day five")]


@pytest.fixture
def welcome(main_topic):
    editor = UserFactory(groups=["Editors"])
    made = series.create_series(
        series=WelcomeSeries(name="Welcome", topic=main_topic, language="en")
    )
    for position, (days, subject) in enumerate(STEPS, start=1):
        step = series.save_step(
            step=SeriesStep(
                series=made, position=position, delay_days=days, subject=subject,
                message=f"The {subject.lower()} message.",
            ),
            editor=editor,
        )  # fmt: skip
        approve(step.issue)
    return made


def received(fake_esp):
    """(address, subject) per series email the ESP accepted (not, say, the goodbye
    email an unsubscribe sends)."""
    steps = {subject for _, subject in STEPS}
    return [(entry.to, entry.subject) for entry in fake_esp.accepted if entry.subject in steps]


def settled():
    """Nothing queued or in flight: every row is sent, skipped or failed."""
    return wait_until(
        lambda: (
            not Delivery.objects.filter(
                status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
            ).exists()
        ),
        timeout=60,
    )


def run_at(moment):
    with time_machine.travel(moment, tick=False):
        series.run_series()
    assert settled()


def test_each_step_reaches_each_reader_exactly_once_at_its_time(
    start_worker, fake_esp, welcome, main_topic
):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        early = SubscriberFactory.create_batch(12, topics=[main_topic])
    worker = start_worker(**mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="5"))
    late: list = []
    for days in range(0, 8):
        if days == 1:  # three readers join a day later: they start then
            with time_machine.travel(start + DAY, tick=False):
                late = SubscriberFactory.create_batch(3, topics=[main_topic])
        run_at(start + days * DAY + timedelta(minutes=2))
        run_at(start + days * DAY + timedelta(minutes=3))  # a second run adds nothing
        expected = {
            (reader.email, subject)
            for group, joined in ((early, 0), (late, 1))
            for reader in group
            for delay, subject in STEPS
            if days >= joined + delay
        }
        assert set(received(fake_esp)) == expected, (days, worker.log()[-3000:])

    counts = Counter(received(fake_esp))
    assert len(counts) == 15 * 3
    assert set(counts.values()) == {1}  # each step, each reader, exactly once
    assert fake_esp.accepted_calls < len(counts)  # batched: one call per batch of readers
    assert all(entry.headers["List-Unsubscribe-Post"] for entry in fake_esp.accepted)


def test_unsubscribing_mid_series_stops_the_rest(start_worker, fake_esp, welcome, main_topic):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        stayer, leaver = SubscriberFactory.create_batch(2, topics=[main_topic])
    start_worker(**mailgun_env(fake_esp))
    run_at(start + timedelta(minutes=1))
    run_at(start + 2 * DAY + timedelta(minutes=1))
    subscriptions.unsubscribe(subscriber=leaver, origin=Origin())
    run_at(start + 5 * DAY + timedelta(minutes=1))
    run_at(start + 9 * DAY)

    assert sorted(s for to, s in received(fake_esp) if to == leaver.email) == [
        "Day two",
        "Day zero",
    ]
    assert sorted(s for to, s in received(fake_esp) if to == stayer.email) == [
        "Day five",
        "Day two",
        "Day zero",
    ]


def test_a_worker_killed_mid_step_leaves_nobody_out(start_worker, fake_esp, welcome, main_topic):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        readers = SubscriberFactory.create_batch(40, topics=[main_topic])
    fake_esp.delay = 0.5
    env = mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="5", NEWSLETTER_LEASE_SECONDS="3")
    worker = start_worker(concurrency=1, **env)
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        series.run_series()
    assert wait_until(lambda: fake_esp.accepted_calls >= 2)

    worker.kill()  # SIGKILL mid-batch: a call may be at the ESP, unrecorded
    start_worker(concurrency=2, **env)
    step = welcome.steps.get(subject="Day zero")

    def beat_then_check():
        # The periodic task takes back the dead worker's rows once their lease ends,
        # and the series runner comes by as beat would run it.
        tasks.run_periodic.delay()
        series.run_series()
        return (
            not Delivery.objects.filter(issue_id=step.issue_id)
            .exclude(status=Delivery.Status.SENT)
            .exists()
        )

    assert wait_until(beat_then_check, timeout=90, interval=1.5)

    got = Counter(to for to, subject in received(fake_esp) if subject == "Day zero")
    assert set(got) == {r.email for r in readers}
    assert sum(n - 1 for n in got.values()) <= 5  # at most the one call in flight
    assert not {s for to, s in received(fake_esp) if s != "Day zero"}  # nothing early
