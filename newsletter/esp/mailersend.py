"""MailerSend: one message per reader (per_message), without metadata.

Anymail's MailerSend backend has no `merge_headers` (so no per-reader List-Unsubscribe
in a batch), returns no message ids from its bulk endpoint, and refuses `metadata`
altogether: its webhooks are mapped to Delivery rows by message id instead
(`tracking.py` falls back to it).
"""

from newsletter.esp.per_message import PerMessageAdapter


class MailerSendAdapter(PerMessageAdapter):
    name = "mailersend"
    carries_metadata = False
