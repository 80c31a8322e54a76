"""One API call per batch, for ESPs that merge per-recipient values themselves."""

from collections.abc import Iterator

from anymail.exceptions import AnymailError
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

from newsletter import emails
from newsletter.esp.base import CallResult, EspAdapter, Recipient, call_failed, rendered
from newsletter.models import Issue

REFUSED = ("rejected", "invalid")


class BatchAdapter(EspAdapter):
    """The issue rendered once, its placeholders in the ESP's merge syntax; each call
    carries up to `batch_limit` readers with their values as Anymail `merge_data`, their
    own List-Unsubscribe as `merge_headers` and their Delivery id as `merge_metadata`."""

    batch_limit = 1000

    def send(self, issue: Issue, recipients: list[Recipient]) -> Iterator[CallResult]:
        limit = self.batch_limit or len(recipients)
        backend = self.connection()
        backend.open()  # one kept-open connection for the batch's calls
        try:
            for start in range(0, len(recipients), limit):
                result = self.send_call(issue, recipients[start : start + limit], backend)
                yield result
                if result.retry:
                    return
        finally:
            backend.close()

    def message(self, issue: Issue, recipients: list[Recipient]) -> AnymailMessage:
        merged = rendered(issue).in_esp_syntax(self.merge_format)
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
        return message

    def add_list_unsubscribe(
        self, message: AnymailMessage, values: dict[str, dict[str, str]]
    ) -> None:
        """Give each reader their own List-Unsubscribe URL (rule 5)."""
        message.merge_headers = {
            email: {"List-Unsubscribe": emails.unsubscribe_header(v["unsubscribe_url"])}
            for email, v in values.items()
        }

    def send_call(
        self, issue: Issue, recipients: list[Recipient], backend: BaseEmailBackend | None = None
    ) -> CallResult:
        message = self.message(issue, recipients)
        message.connection = backend
        try:
            message.send()
        except AnymailError as error:
            return call_failed(recipients, error)
        return result_of(message, recipients)


def result_of(message: AnymailMessage, recipients: list[Recipient]) -> CallResult:
    """Each recipient's fate from Anymail's normalised status of one call."""
    by_email = {r.email: r for r in recipients}
    result = CallResult()
    for email, status in (message.anymail_status.recipients or {}).items():
        recipient = by_email.get(email.lower()) or by_email.get(email)
        if recipient is None:
            continue
        if status.status in REFUSED:
            result.rejected.append(recipient.delivery_id)
        else:
            result.sent.append((recipient.delivery_id, status.message_id or ""))
    return result
