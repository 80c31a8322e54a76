"""A confirmation never waits behind a bulk send, with the workers started exactly as the
README and docker-compose start them (`make worker`), on a real broker, real Anymail
backends and the fake ESP."""

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import Client
from django.urls import reverse

from newsletter import sending
from newsletter.models import Issue
from project.celery import app as celery_app
from tests.conftest import BASE_DIR, MakeWorker, redis_url_for_tests, wait_until, worker_env
from tests.factories import IssueFactory, SubscriberFactory, approve

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def make_worker(transactional_db: None, tmp_path: Path, fake_esp) -> Iterator[MakeWorker]:
    """`make worker` (no arguments), its email going to the fake ESP through Mailgun."""
    broker = redis_url_for_tests()
    redis.Redis.from_url(broker).delete("transactional", "bulk", "unacked", "unacked_index")
    celery_app.conf.task_always_eager = False
    env = worker_env(
        broker,
        tmp_path,
        ESP="mailgun",
        MAILGUN_API_KEY="test-key",
        MAILGUN_SENDER_DOMAIN="mg.example.org",
        MAILGUN_API_URL=fake_esp.mailgun_api_url,
        NEWSLETTER_BATCH_SIZE="10",
    )
    worker = MakeWorker([], env, tmp_path / "make-worker.log")
    yield worker.start(nodes=2)
    worker.stop()


def test_a_signup_during_a_long_send_is_confirmed_before_the_send_ends(
    make_worker, fake_esp, main_topic
):
    readers = SubscriberFactory.create_batch(300, topics=[main_topic])
    issue = approve(IssueFactory(subject="Second opinions"))
    # 30 calls of 10 readers, each answered after a second: the bulk worker's two slots
    # are busy for about fifteen seconds.
    fake_esp.delay = 1.0
    sending.start_issue(issue_id=issue.pk)
    assert wait_until(lambda: fake_esp.accepted_calls >= 2, timeout=60), make_worker.log()

    response = Client().post(reverse("newsletter:subscribe"), {"email": "new@example.com"})
    assert response.status_code == 302

    assert wait_until(lambda: "new@example.com" in fake_esp.recipients(), timeout=60)
    order = fake_esp.recipients()
    confirmation = order.index("new@example.com")
    assert fake_esp.accepted[confirmation].subject == "Please confirm your Advances subscription"
    assert wait_until(
        lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT, timeout=120
    )
    # The send was far from over: most of the list went out after the confirmation.
    bulk_after = fake_esp.recipients()[confirmation + 1 :]
    assert len(bulk_after) >= len(readers) // 2, make_worker.log()
    assert sorted(set(fake_esp.recipients()) - {"new@example.com"}) == sorted(
        r.email for r in readers
    )
    # One process per queue, each with its own node name.
    assert re.search(r"transactional@\S+ ready\.", make_worker.log())
    assert re.search(r"bulk@\S+ ready\.", make_worker.log())


def compose_worker_commands() -> list[list[str]]:
    text = (BASE_DIR / "docker-compose.yml").read_text()
    return [
        [part.strip().strip('"') for part in found.split(",")]
        for found in re.findall(r'command: \[("make", "worker"[^\]]*)\]', text)
    ]


@pytest.mark.django_db
def test_docker_compose_runs_one_make_worker_process_per_service():
    commands = compose_worker_commands()
    assert len(commands) == 2
    for command in commands:
        dry_run = subprocess.run(
            ["make", "-n", "--no-print-directory", *command[1:]],
            cwd=BASE_DIR, capture_output=True, text=True, check=True,
        )  # fmt: skip
        celery = [
            line for line in dry_run.stdout.splitlines() if "celery -A project worker" in line
        ]
        assert len(celery) == 1, dry_run.stdout
        queue = next(arg.split("=", 1)[1] for arg in command if arg.startswith("QUEUES="))
        assert f"--queues {queue} --hostname {queue}@%h" in celery[0]
