"""One API call per batch, for ESPs that merge per-recipient values themselves.

`BatchAdapter` is the one generic batch path: an ESP module only says how many readers
one call may carry (`batch_limit`), how the ESP names a per-recipient value
(`merge_format`), and any `esp_extra` its Anymail backend needs. ESPs that merge only
into a template stored at the ESP (Postmark, Amazon SES) subclass `StoredTemplateAdapter`
and say how to store one.
"""

import hashlib
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

from anymail.exceptions import AnymailError
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

from newsletter import emails
from newsletter.composing import RenderedIssue
from newsletter.esp.base import CallResult, EspAdapter, Recipient, call_failed, rendered
from newsletter.models import Issue

# Anymail's per-recipient statuses that mean "the ESP will not deliver to this address".
REFUSED = ("rejected", "invalid")


class BatchAdapter(EspAdapter):
    """The issue rendered once, its placeholders in the ESP's merge syntax; each call
    carries up to `batch_limit` readers with their values as Anymail `merge_data`, their
    own List-Unsubscribe as `merge_headers` and their Delivery id as `merge_metadata`."""

    batch_limit = 1000

    def send(self, issue: Issue, recipients: list[Recipient]) -> Iterator[CallResult]:
        limit = self.batch_limit or len(recipients)
        backend = self.connection()
        try:
            for start in range(0, len(recipients), limit):
                result = self.send_call(backend, issue, recipients[start : start + limit])
                yield result
                if result.retry:
                    return
        finally:
            self.release(backend)

    def message(self, issue: Issue, recipients: list[Recipient]) -> AnymailMessage:
        merged = self.merged(issue)
        values = {r.email: r.values() for r in recipients}
        message = AnymailMessage(
            subject=merged.subject,
            body=merged.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[r.email for r in recipients],
            headers=emails.shared_list_headers(),
            metadata={"issue": str(issue.pk)},
        )
        message.attach_alternative(merged.html, "text/html")
        message.merge_data = values
        self.add_list_unsubscribe(message, values)
        # ESP webhooks carry this back, mapping each event to its Delivery row.
        message.merge_metadata = {r.email: {"delivery": str(r.delivery_id)} for r in recipients}
        if self.esp_extra:
            message.esp_extra = dict(self.esp_extra)
        return message

    def merged(self, issue: Issue) -> RenderedIssue:
        return rendered(issue).in_esp_syntax(self.merge_format)

    def add_list_unsubscribe(
        self, message: AnymailMessage, values: dict[str, dict[str, str]]
    ) -> None:
        """Give each reader their own List-Unsubscribe URL (rule 5)."""
        message.merge_headers = {
            email: {"List-Unsubscribe": emails.unsubscribe_header(v["unsubscribe_url"])}
            for email, v in values.items()
        }

    def send_call(
        self, backend: BaseEmailBackend, issue: Issue, recipients: list[Recipient]
    ) -> CallResult:
        message = self.message(issue, recipients)
        message.connection = backend
        try:
            message.send()
        except AnymailError as error:
            return call_failed(recipients, error)
        return result_of(message, recipients)


def result_of(message: AnymailMessage, recipients: list[Recipient]) -> CallResult:
    """Each recipient's fate from Anymail's normalised status of one call: refused
    addresses are rejected (the reader is suppressed), "failed" ones (an ESP that
    reports a per-recipient failure, as SES's bulk API does) failed, the rest sent."""
    by_email = {r.email: r for r in recipients}
    result = CallResult()
    for email, status in (message.anymail_status.recipients or {}).items():
        recipient = by_email.get(email.lower()) or by_email.get(email)
        if recipient is None:
            continue
        if status.status in REFUSED:
            result.rejected.append(recipient.delivery_id)
        elif status.status == "failed":
            result.failed.append(recipient.delivery_id)
            result.error = "the ESP reported this recipient failed"
        else:
            result.sent.append((recipient.delivery_id, status.message_id or ""))
    return result


class StoredTemplateAdapter(BatchAdapter):
    """For ESPs whose batch API merges per-recipient values only into a template stored
    at the ESP (Postmark, Amazon SES): `prepare` stores the frozen issue as a template
    named for the issue (create or update), once per issue in each worker process;
    each batch call then names it (`template_id`) and carries only the readers' values.

    A subclass fills in `store_template`."""

    needs_template = True
    # (adapter, issue id) -> fingerprint of the content this process has stored.
    _stored: ClassVar[dict[tuple[str, int], str]] = {}
    _stored_lock = threading.Lock()

    def template_name(self, issue: Issue) -> str:
        return f"advances-issue-{issue.pk}"

    def send(self, issue: Issue, recipients: list[Recipient]) -> Iterator[CallResult]:
        try:
            self.ensure_template(issue)
        except (AnymailError, OSError) as error:  # (requests' errors are OSErrors)
            yield call_failed(recipients, error)
            return
        yield from super().send(issue, recipients)

    def ensure_template(self, issue: Issue) -> None:
        """Store the frozen issue as its template unless this process already has."""
        merged = self.merged(issue)
        fingerprint = hashlib.sha256(
            "\0".join((merged.subject, merged.html, merged.text)).encode()
        ).hexdigest()
        key = (type(self).__name__, issue.pk)
        with self._stored_lock:
            if self._stored.get(key) == fingerprint:
                return
            backend = self.connection()
            try:
                self.store_template(backend, self.template_name(issue), merged)
            finally:
                self.release(backend)
            self._stored[key] = fingerprint

    def store_template(self, backend: Any, name: str, merged: RenderedIssue) -> None:
        """Create the template `name` at the ESP, or update it if it exists."""
        raise NotImplementedError

    def message(self, issue: Issue, recipients: list[Recipient]) -> AnymailMessage:
        message = super().message(issue, recipients)
        # The subject and bodies live in the stored template.
        message.subject = ""
        message.body = ""
        message.alternatives = []
        message.template_id = self.template_name(issue)
        return message
