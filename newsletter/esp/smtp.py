"""The center's own mail server (`ESP=smtp`): Django's SMTP backend, one message per
reader, concurrently over kept-open SMTP sessions (`per_message`), STARTTLS by default.

What the server answers decides each row: a 4xx (greylisting, "try again later") sends
the rest of the batch back to the queue for a later retry; a 5xx refusing one recipient
fails that row and suppresses the reader as bounced, as an ESP's refusal does; any other
5xx (the message itself refused) fails the row and counts toward pausing the send.
"""

import smtplib
from email.utils import make_msgid

from django.core.mail import EmailMultiAlternatives

from newsletter import emails
from newsletter.esp.base import CallResult, Recipient, call_failed
from newsletter.esp.per_message import PerMessageAdapter


class SmtpAdapter(PerMessageAdapter):
    name = "smtp"
    # A relay closes idle sessions: each batch opens its own (one per thread) and
    # closes them when it is done.
    reuse_connections = False

    def before_send(self, message: EmailMultiAlternatives) -> str:
        # Set here (Django would make one when it serialises) so the row records it.
        message_id = make_msgid(domain=emails.sender_domain())
        message.extra_headers["Message-ID"] = message_id
        return message_id

    def call_failed(self, recipient: Recipient, error: Exception) -> CallResult:
        if isinstance(error, smtplib.SMTPRecipientsRefused) and not emails.is_retryable(error):
            return CallResult(rejected=[recipient.delivery_id])
        return call_failed([recipient], error)
