"""Thin Celery tasks: ids in, one service call. Queues and routing: project/celery.py."""

import random
from collections.abc import Callable

from celery import Task, shared_task

from newsletter import emails, leases, privacy, review_due, sending, series, tracking

MAX_RETRIES = 8
RETRY_CAP_SECONDS = 600
# A database restart or failover: retry often (it is usually back within seconds) and
# for about ten minutes; after that the periodic task re-queues what is left.
DATABASE_RETRIES = 40
DATABASE_RETRY_CAP_SECONDS = 15


def backoff(retries: int) -> float:
    """Exponential backoff with jitter: about 1 s, 2 s, 4 s ... capped at 10 minutes."""
    return min(RETRY_CAP_SECONDS, 2**retries) * (0.5 + random.random() / 2)  # noqa: S311


def retrying(task: Task, action: Callable[[], object]) -> None:
    """Run the action; retry the task later only for what can succeed later (network
    errors, 429, 5xx, a database that went away). Anything else fails now."""
    try:
        action()
    except leases.DATABASE_ERRORS as error:
        raise database_retry(task, error) from error
    except Exception as error:
        if not emails.is_retryable(error):
            raise
        raise task.retry(exc=error, countdown=backoff(task.request.retries)) from error


def database_retry(task: Task, error: Exception) -> Exception:
    leases.forget_broken_connection()
    countdown = min(DATABASE_RETRY_CAP_SECONDS, backoff(task.request.retries))
    return task.retry(exc=error, countdown=countdown, max_retries=DATABASE_RETRIES)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def send_subscriber_email(self: Task, subscriber_id: int, kind: str) -> None:
    retrying(self, lambda: emails.send_subscriber_email(subscriber_id=subscriber_id, kind=kind))


@shared_task(bind=True, max_retries=MAX_RETRIES)
def send_issue_test(self: Task, issue_id: int, addresses: list[str], first_name: str = "") -> None:
    retrying(
        self,
        lambda: emails.send_issue_test(
            issue_id=issue_id, addresses=addresses, first_name=first_name
        ),
    )


@shared_task(bind=True, max_retries=MAX_RETRIES)
def bulk_send(self: Task, issue_id: int) -> None:
    """One lane of an issue's send: batches until none is left (see sending.py)."""
    try:
        carry_on_in = sending.send_batches(issue_id=issue_id)
    except sending.DatabaseUnavailable as error:
        raise database_retry(self, error) from error
    except sending.RetryLater as error:
        if self.request.retries >= MAX_RETRIES:
            sending.pause_after_outage(issue_id=issue_id, error=str(error))
            return
        raise self.retry(exc=error, countdown=backoff(self.request.retries)) from error
    if carry_on_in is not None:
        bulk_send.apply_async((issue_id,), countdown=carry_on_in)


@shared_task
def run_periodic() -> None:
    sending.run_periodic()


@shared_task(bind=True, max_retries=MAX_RETRIES)
def send_data_export(self: Task, subscriber_id: int) -> None:
    retrying(self, lambda: emails.send_data_export(subscriber_id=subscriber_id))


@shared_task
def apply_retention() -> None:
    privacy.apply_retention()


@shared_task
def apply_delivery_event(event_id: int) -> None:
    tracking.apply_event(event_id=event_id)


@shared_task
def take_list_snapshot() -> None:
    tracking.take_snapshot()


@shared_task
def run_series() -> None:
    """Welcome series: enrol, stop, and queue the steps that are due (bulk lanes)."""
    series.run_series()


@shared_task(bind=True, max_retries=MAX_RETRIES)
def send_reviews_due(self: Task) -> None:
    """The weekly reminder to the Clinical reviewers (transactional queue)."""
    retrying(self, review_due.send_reminder)
