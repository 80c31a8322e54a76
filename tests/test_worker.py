"""Transactional email through a real Celery worker on a real Redis broker."""

import email
import time
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from newsletter.models import Subscriber

# Serialized rollback restores the migrations' data (the main topic) that the flush
# after any earlier transactional test (the browser tests) takes away.
pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def wait_for_files(directory: Path, count: int, timeout: float = 30) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(directory.glob("*.eml")) if directory.exists() else []
        if len(files) >= count:
            return files
        time.sleep(0.1)
    return sorted(directory.glob("*.eml")) if directory.exists() else []


def test_signup_sends_the_confirmation_through_the_transactional_queue(
    celery_worker_on_redis, tmp_path, main_topic
):
    # The worker consumes only the transactional queue: an email routed anywhere
    # else would never arrive.
    response = Client().post(reverse("newsletter:subscribe"), {"email": "ann@example.com"})
    assert response.status_code == 302

    files = wait_for_files(tmp_path / "outbox", 1)
    assert len(files) == 1, celery_worker_on_redis.log()
    message = email.message_from_bytes(files[0].read_bytes())
    assert message["To"] == "ann@example.com"
    assert message["Subject"] == "Please confirm your Advances subscription"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert set(parts) == {"text/plain", "text/html"}
    confirm_url = next(
        word for word in parts["text/plain"].split() if "/newsletter/confirm/" in word
    )

    client = Client()
    client.post("/" + confirm_url.split("/", 3)[3])
    assert Subscriber.objects.get(email="ann@example.com").status == Subscriber.Status.ACTIVE
    assert len(wait_for_files(tmp_path / "outbox", 2)) == 2  # the welcome email
