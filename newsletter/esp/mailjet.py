"""Mailjet: one Send API v3.1 call per batch, one `Messages` entry per reader (their
`Variables`, `Headers` and `EventPayload`), at most 50 messages per call.

Mailjet fills `{{var:NAME}}` in inline content only with `TemplateLanguage` on, which
Anymail sets by itself only for stored templates.
"""

from newsletter.esp.batch import BatchAdapter


class MailjetAdapter(BatchAdapter):
    name = "mailjet"
    batch_limit = 50  # Mailjet Send API v3.1: at most 50 messages per call
    merge_format = "{{{{var:{}}}}}"  # {{var:name}}
    esp_extra = {"Globals": {"TemplateLanguage": True}}
