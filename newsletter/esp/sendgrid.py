"""SendGrid: up to 1,000 personalizations per `mail/send` call.

Anymail's SendGrid backend turns a batch into one personalization per reader, with our
values as legacy `substitutions` (no stored template needed), `merge_headers` as that
personalization's `headers` and `merge_metadata` as its `custom_args`. SendGrid replaces
a substitution key wherever it appears, so the keys carry delimiters (`-salutation-`),
which Anymail adds from `merge_field_format`.
"""

from newsletter.esp.batch import BatchAdapter


class SendGridAdapter(BatchAdapter):
    name = "sendgrid"
    batch_limit = 1000  # SendGrid: at most 1,000 personalizations per request
    merge_format = "-{}-"
    esp_extra = {"merge_field_format": "-{}-"}
