"""One message per reader, for ESPs without a batch API that carries per-recipient
content (and for the .eml outbox of the embedded default)."""

from collections.abc import Iterator

from anymail.exceptions import AnymailError, AnymailRecipientsRefused

from newsletter import emails
from newsletter.esp.base import CallResult, EspAdapter, Recipient, call_failed, rendered
from newsletter.models import Issue


class PerMessageAdapter(EspAdapter):
    """Each reader's copy personalised by substitution and sent as its own message
    over one open connection; one CallResult per message, so a crash loses one."""

    def send(self, issue: Issue, recipients: list[Recipient]) -> Iterator[CallResult]:
        issue_body = rendered(issue)
        backend = self.connection()
        backend.open()
        try:
            for recipient in recipients:
                values = recipient.values()
                message = emails.issue_message(
                    rendered=issue_body.personalise(values),
                    to=recipient.email,
                    unsubscribe_url=values["unsubscribe_url"],
                )
                message.connection = backend
                message.metadata = recipient.metadata(issue.pk)  # type: ignore[attr-defined]
                try:
                    message.send()
                except AnymailRecipientsRefused:
                    yield CallResult(rejected=[recipient.delivery_id])
                    continue
                except AnymailError as error:
                    result = call_failed([recipient], error)
                    yield result
                    if result.retry:
                        return
                    continue
                status = getattr(message, "anymail_status", None)
                message_id = (status.message_id if status else "") or ""
                yield CallResult(sent=[(recipient.delivery_id, message_id)])
        finally:
            backend.close()
