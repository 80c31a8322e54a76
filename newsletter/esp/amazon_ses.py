"""Amazon SES: a template stored per issue, then SESv2 `SendBulkEmail` calls of up to 50
destinations, each with the reader's `ReplacementTemplateData` and `ReplacementHeaders`
(their own List-Unsubscribe, and `X-Metadata` for webhooks).

SES merges per-recipient values only into a stored template, and Anymail sends
templated messages through SendBulkEmail. The issue is stored once per issue
(`UpdateEmailTemplate`, or `CreateEmailTemplate` the first time) as
`advances-issue-<id>`. Handlebars triple braces, so nothing is HTML-escaped twice.

Measured against concurrent per-message `SendEmail` calls (`NEWSLETTER_PER_MESSAGE`,
benchmarks/esps.py): see README "ESPs" for the figures and why bulk is the default.
"""

from typing import Any

from anymail.exceptions import AnymailAPIError

from newsletter.composing import RenderedIssue
from newsletter.esp.batch import StoredTemplateAdapter


class AmazonSesAdapter(StoredTemplateAdapter):
    name = "amazon_ses"
    batch_limit = 50  # SES SendBulkEmail: at most 50 destinations per call
    merge_format = "{{{{{{{}}}}}}}"  # {{{name}}}

    def store_template(self, backend: Any, name: str, merged: RenderedIssue) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        content = {"Subject": merged.subject, "Html": merged.html, "Text": merged.text}
        client = backend.client
        try:
            try:
                client.update_email_template(TemplateName=name, TemplateContent=content)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NotFoundException":
                    raise
                try:
                    client.create_email_template(TemplateName=name, TemplateContent=content)
                except ClientError as error:
                    # Another worker process created it between our update and create.
                    if error.response.get("Error", {}).get("Code") != "AlreadyExistsException":
                        raise
                    client.update_email_template(TemplateName=name, TemplateContent=content)
        except (BotoCoreError, ClientError) as error:
            raise AnymailAPIError(
                f"Amazon SES: storing the issue's template failed: {error}",
                response=getattr(error, "response", None),
            ) from error
