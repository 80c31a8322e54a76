"""ESP adapters: one module per ESP behind `EspAdapter` (see `base`), chosen by the
`ESP` setting. `sending.py` keeps the one loop that claims, calls and records."""

from django.conf import settings

from newsletter.esp.base import CallResult, EspAdapter, Recipient
from newsletter.esp.mailgun import MailgunAdapter
from newsletter.esp.per_message import PerMessageAdapter

__all__ = ["ADAPTERS", "CallResult", "EspAdapter", "Recipient", "adapter", "adapter_for"]

# ESPs with a path of their own; every other ESP (and the outbox) is sent one message
# per recipient, which is correct everywhere.
ADAPTERS: dict[str, type[EspAdapter]] = {
    adapter_class.name: adapter_class for adapter_class in (MailgunAdapter,)
}


def adapter_for(name: str) -> EspAdapter:
    """The adapter for this ESP name ("" is the embedded .eml outbox)."""
    adapter_class = ADAPTERS.get(name, PerMessageAdapter)
    return adapter_class(name or "outbox")


def adapter() -> EspAdapter:
    """The adapter for the configured ESP."""
    return adapter_for(settings.ESP)
