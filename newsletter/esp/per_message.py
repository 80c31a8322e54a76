"""One message per reader, sent concurrently, for ESPs without a batch API that carries
per-recipient content and headers (Resend, Mandrill, MailerSend, ...), for the SMTP
relay (`smtp`) and for the .eml outbox of the embedded default.

`NEWSLETTER_SEND_CONCURRENCY` threads each keep one connection open to the ESP (an
HTTP keep-alive session or boto3 client, from batch to batch; an SMTP session, for
one batch), so an ESP that takes one message per call still sends many at once. The
global rate limit is taken for the whole batch before it is claimed
(`sending.send_batch`), so threads never exceed it.
Threads only call the ESP: results come back to the caller's thread, which alone
touches the database.
"""

import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import translation

from newsletter import emails
from newsletter.composing import RenderedIssue
from newsletter.esp.base import CallResult, EspAdapter, Recipient, call_failed, rendered
from newsletter.models import Issue


class PerMessageAdapter(EspAdapter):
    """Each reader's copy personalised by substitution and sent as its own message.
    A CallResult is yielded for the messages completed so far, each time one completes,
    so a crash loses at most the messages in flight."""

    # Whether the ESP's Anymail backend takes `metadata` (the Delivery id for webhooks).
    carries_metadata = True

    def send(self, issue: Issue, recipients: list[Recipient]) -> Iterator[CallResult]:
        body = rendered(issue)
        threads = max(1, settings.NEWSLETTER_SEND_CONCURRENCY)
        opened: list[BaseEmailBackend] = []  # this batch's, when connections are not kept
        opened_lock = threading.Lock()
        local = threading.local()
        # The caller's language (the issue's) is per thread: the senders take it along.
        language = translation.get_language()

        def send_one(recipient: Recipient) -> CallResult:
            with translation.override(language):
                return send_one_in_language(recipient)

        def send_one_in_language(recipient: Recipient) -> CallResult:
            if self.reuse_connections:
                backend = self.connection()  # this thread's, kept from batch to batch
            else:
                kept: BaseEmailBackend | None = getattr(local, "backend", None)
                if kept is None:
                    kept = local.backend = self.connection()
                    with opened_lock:
                        opened.append(kept)
                backend = kept
            return self.send_one(backend, issue, body, recipient)

        # Kept-open connections live in the pool's threads, so the pool is kept too.
        pool = shared_pool(threads) if self.reuse_connections else ThreadPoolExecutor(threads)
        pending: set[Future[CallResult]] = {pool.submit(send_one, r) for r in recipients}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                result = merged(future.result() for future in done)
                if result.retry:
                    # Stop here: what has not started never will; what is already at
                    # the ESP finishes and is recorded with this result.
                    finished = stop(pending)
                    pending = set()
                    yield merged([result, *(future.result() for future in finished)])
                    return
                yield result
        finally:
            stop(pending)  # the caller stopped early (an error): send nothing more
            if not self.reuse_connections:
                pool.shutdown(wait=True)
            for backend in opened:
                self.release(backend)

    def send_one(
        self, backend: BaseEmailBackend, issue: Issue, body: RenderedIssue, recipient: Recipient
    ) -> CallResult:
        values = recipient.values()
        message = emails.issue_message(
            rendered=body.personalise(values),
            to=recipient.email,
            unsubscribe_url=values["unsubscribe_url"],
        )
        message.connection = backend
        if self.carries_metadata:
            message.metadata = recipient.metadata(issue.pk)  # type: ignore[attr-defined]
        message_id = self.before_send(message)
        try:
            message.send()
        except AnymailRecipientsRefused:
            return CallResult(rejected=[recipient.delivery_id])
        except (AnymailError, OSError) as error:  # (smtplib's errors are OSErrors)
            return self.call_failed(recipient, error)
        status = getattr(message, "anymail_status", None)
        message_id = (status and status.message_id) or message_id
        return CallResult(sent=[(recipient.delivery_id, message_id)])

    def before_send(self, message: EmailMultiAlternatives) -> str:
        """Last touches to one message; returns its message id if we set one."""
        return ""

    def call_failed(self, recipient: Recipient, error: Exception) -> CallResult:
        return call_failed([recipient], error)


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def shared_pool(threads: int) -> ThreadPoolExecutor:
    """This process's sending threads (each keeps its own connections open)."""
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="esp-send")
        return _pools[threads]


def stop(pending: set[Future[CallResult]]) -> set[Future[CallResult]]:
    """Cancel what has not started; wait for (and return) what already has."""
    for future in pending:
        future.cancel()
    running = [future for future in pending if not future.cancelled()]
    return wait(running).done if running else set()


def merged(results: Iterable[CallResult]) -> CallResult:
    """Several messages' results as one, so the caller records them together."""
    total = CallResult()
    for result in results:
        total.sent += result.sent
        total.rejected += result.rejected
        total.failed += result.failed
        total.error = total.error or result.error
        total.retry = total.retry or result.retry
    return total
