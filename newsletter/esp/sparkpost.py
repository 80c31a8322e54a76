"""SparkPost: one transmission per batch, each recipient with its own
`substitution_data` and `metadata`.

Anymail's SparkPost backend carries `merge_headers` through substitution data too (a
`{{Header__List_Unsubscribe}}` header), so each reader gets their own List-Unsubscribe.
Triple braces, because SparkPost HTML-escapes `{{value}}` and our values are URLs and a
salutation already safe for both parts.
"""

from newsletter.esp.batch import BatchAdapter


class SparkPostAdapter(BatchAdapter):
    name = "sparkpost"
    # SparkPost documents no hard per-transmission ceiling; 1,000 keeps each call's
    # request body and a crashed worker's duplicate window the size of the others'.
    batch_limit = 1000
    merge_format = "{{{{{{{}}}}}}}"  # {{{name}}}
