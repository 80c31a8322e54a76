"""Leases on claimed Delivery rows, and what the ESP answered kept through a database
outage.

A claimed batch belongs to its worker until its lease ends. The lease is short (60 s by
default) so that a dead worker's rows go out again soon, and a `LeaseKeeper` pushes it
forward from a background thread for as long as the batch is at the ESP, so a live
worker never loses its rows to another, however slow the ESP is. The one window for a
duplicate stays what it was: a worker that dies holding the ESP's answer.

A worker that holds the ESP's answer while the database is away keeps it and records it
once the database answers again (`through_outage`), for up to the lease it holds: until
then no other worker can claim those rows, so an outage shorter than the lease sends
nobody the issue twice.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from newsletter.models import Delivery

logger = logging.getLogger(__name__)

# What a database that went away (a restart, a failover, a cut connection) raises.
DATABASE_ERRORS = (OperationalError, InterfaceError)

T = TypeVar("T")


def lease_period() -> timedelta:
    return timedelta(seconds=settings.NEWSLETTER_LEASE_SECONDS)


def forget_broken_connection() -> None:
    """Drop this thread's database connection after an error, so the next query opens a
    fresh one instead of failing on the dead one (outside a transaction only)."""
    if not connection.in_atomic_block:
        with contextlib.suppress(*DATABASE_ERRORS):
            connection.close()


class LeaseKeeper:
    """Keeps one claim's lease alive while its batch is at the ESP.

    Every third of a lease, a background thread moves `lease_until` of the claim's rows
    still being sent one lease ahead. It stops when the batch is recorded (the context
    ends) or after the task's hard time limit, when Celery would have killed a stuck
    task anyway. `expires_at` is when the lease ends if no renewal gets through (a
    `time.monotonic()` value), so a worker knows how long it may hold an answer.
    """

    def __init__(self, claim: str, *, lease: timedelta | None = None) -> None:
        self.claim = claim
        self.lease = lease or lease_period()
        seconds = self.lease.total_seconds()
        self.interval = max(0.05, seconds / 3)
        self.limit = float(getattr(settings, "CELERY_TASK_TIME_LIMIT", 0) or 0) or None
        # The claim itself set lease_until one lease ahead, an instant ago.
        self.expires_at = time.monotonic() + seconds
        self.renewals = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{claim[:8]}", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def renew(self) -> int:
        """Move the lease one period ahead; returns the rows renewed."""
        started = time.monotonic()
        renewed = Delivery.objects.filter(claim=self.claim, status=Delivery.Status.SENDING).update(
            lease_until=timezone.now() + self.lease
        )
        self.expires_at = started + self.lease.total_seconds()
        self.renewals += 1
        return renewed

    def _run(self) -> None:
        began = time.monotonic()
        failing = False
        try:
            while not self._stop.wait(self.interval):
                if self.limit and time.monotonic() - began > self.limit:
                    return
                try:
                    self.renew()
                except DATABASE_ERRORS as error:
                    if not failing:
                        logger.warning("Claim %s: could not renew its lease: %s", self.claim, error)
                    failing = True
                    forget_broken_connection()
                else:
                    failing = False
        finally:
            # This thread's own connection; the worker's threads each have theirs.
            connection.close()


def through_outage(action: Callable[[], T], *, until: float, what: str) -> T:
    """Run a database action; while the database is unavailable, retry it with backoff
    (0.25 s doubling to 5 s) until the `time.monotonic()` deadline `until`, then raise
    the last error."""
    delay = 0.25
    while True:
        try:
            return action()
        except DATABASE_ERRORS as error:
            if connection.in_atomic_block:
                raise
            forget_broken_connection()
            now = time.monotonic()
            if now >= until:
                logger.error("Database unavailable; gave up %s: %s", what, error)
                raise
            logger.warning("Database unavailable; retrying %s in %.2f s: %s", what, delay, error)
            time.sleep(min(delay, max(0.0, until - now)))
            delay = min(delay * 2, 5.0)
