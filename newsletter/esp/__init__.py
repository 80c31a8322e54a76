"""ESP adapters: one module per ESP behind `EspAdapter` (see `base`), chosen by the
`ESP` setting. `sending.py` keeps the one loop that claims, calls and records.

Batch path (one API call carries many readers, `batch.BatchAdapter`): Mailgun, SendGrid,
SparkPost, Brevo, Mailjet, Unisender Go; through a template stored at the ESP per issue
(`batch.StoredTemplateAdapter`): Postmark, Amazon SES. Every other ESP, and the SMTP
relay, goes one message per reader over concurrent kept-open connections
(`per_message`). README "ESPs" says why for each.
"""

from django.conf import settings

from newsletter.esp.amazon_ses import AmazonSesAdapter
from newsletter.esp.base import CallResult, EspAdapter, Recipient
from newsletter.esp.brevo import BrevoAdapter
from newsletter.esp.mailersend import MailerSendAdapter
from newsletter.esp.mailgun import MailgunAdapter
from newsletter.esp.mailjet import MailjetAdapter
from newsletter.esp.per_message import PerMessageAdapter
from newsletter.esp.postmark import PostmarkAdapter
from newsletter.esp.sendgrid import SendGridAdapter
from newsletter.esp.smtp import SmtpAdapter
from newsletter.esp.sparkpost import SparkPostAdapter
from newsletter.esp.unisender_go import UnisenderGoAdapter

__all__ = ["ADAPTERS", "CallResult", "EspAdapter", "Recipient", "adapter", "adapter_for"]

# ESPs with a path of their own; every other ESP (and the outbox) is sent one message
# per recipient, which is correct everywhere.
ADAPTERS: dict[str, type[EspAdapter]] = {
    adapter_class.name: adapter_class
    for adapter_class in (
        MailgunAdapter,
        SendGridAdapter,
        SparkPostAdapter,
        BrevoAdapter,
        MailjetAdapter,
        UnisenderGoAdapter,
        PostmarkAdapter,
        AmazonSesAdapter,
        MailerSendAdapter,
        SmtpAdapter,
    )
}
# Anymail's old name for Brevo.
ADAPTERS["sendinblue"] = BrevoAdapter


def adapter_for(name: str, *, per_message: bool = False) -> EspAdapter:
    """The adapter for this ESP name ("" is the embedded .eml outbox). `per_message`
    sends one message per reader even where the ESP has a batch path."""
    adapter_class = ADAPTERS.get(name, PerMessageAdapter)
    if per_message and not issubclass(adapter_class, PerMessageAdapter):
        adapter_class = PerMessageAdapter
    return adapter_class(name or "outbox")


def adapter() -> EspAdapter:
    """The adapter for the configured ESP."""
    return adapter_for(settings.ESP, per_message=settings.NEWSLETTER_PER_MESSAGE)
