"""Mailgun: up to 1,000 `to` recipients per call with `recipient-variables`.

Mailgun fills `%recipient.KEY%` in bodies and in `h:` headers, so one List-Unsubscribe
header in merge syntax gives every reader their own URL from the same value as the
link in the body.
"""

from anymail.message import AnymailMessage
from django.conf import settings

from newsletter import emails
from newsletter.esp.batch import BatchAdapter

ANYMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"


class MailgunAdapter(BatchAdapter):
    name = "mailgun"
    batch_limit = 1000
    merge_format = "%recipient.{}%"

    def backend_path(self) -> str | None:
        # The same Anymail backend, building its 1,000-recipient payload with less CPU
        # (newsletter/esp/mailgun_backend.py); any other configured backend as it is.
        if settings.EMAIL_BACKEND == ANYMAIL_BACKEND:
            return "newsletter.esp.mailgun_backend.EmailBackend"
        return None

    def add_list_unsubscribe(
        self, message: AnymailMessage, values: dict[str, dict[str, str]]
    ) -> None:
        message.extra_headers["List-Unsubscribe"] = emails.unsubscribe_header(
            self.merge_format.format("unsubscribe_url")
        )
