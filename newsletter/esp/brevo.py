"""Brevo: one `smtp/email` call per batch, with one `messageVersions` entry per reader
(their `params`, their own headers and `X-Mailin-custom` metadata), up to 1,000 versions
per call. Brevo's template language fills `{{ params.NAME }}` in inline content."""

from newsletter.esp.batch import BatchAdapter


class BrevoAdapter(BatchAdapter):
    name = "brevo"
    batch_limit = 1000  # Brevo: at most 1,000 messageVersions per call
    merge_format = "{{{{ params.{} }}}}"  # {{ params.name }}
