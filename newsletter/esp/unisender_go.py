"""Unisender Go: one `email/send.json` call per batch, up to 500 recipients, each with
their own `substitutions` and `metadata`. Its one per-recipient header is
List-Unsubscribe, which is the one we need (Anymail maps `merge_headers` onto it)."""

from newsletter.esp.batch import BatchAdapter


class UnisenderGoAdapter(BatchAdapter):
    name = "unisender_go"
    batch_limit = 500  # Unisender Go: at most 500 recipients per call
    merge_format = "{{{{{}}}}}"  # {{name}}, the default "simple" template engine
