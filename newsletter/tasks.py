"""Thin Celery tasks: ids in, one service call. Queues and routing: project/celery.py."""

import random

from celery import shared_task

from newsletter import emails

MAX_RETRIES = 8
RETRY_CAP_SECONDS = 600


def backoff(retries: int) -> float:
    """Exponential backoff with jitter: about 1 s, 2 s, 4 s ... capped at 10 minutes."""
    return min(RETRY_CAP_SECONDS, 2**retries) * (0.5 + random.random() / 2)  # noqa: S311


@shared_task(bind=True, max_retries=MAX_RETRIES)
def send_subscriber_email(self, subscriber_id: int, kind: str) -> None:
    try:
        emails.send_subscriber_email(subscriber_id=subscriber_id, kind=kind)
    except Exception as error:
        # Only what can succeed later is retried (network errors, 429, 5xx).
        if not emails.is_retryable(error):
            raise
        raise self.retry(exc=error, countdown=backoff(self.request.retries)) from error
