"""Postmark: a template stored per issue, then `email/batchWithTemplates` calls of up to
500 messages, each with the reader's `TemplateModel`, `Headers` and `Metadata`.

Postmark merges per-recipient values only into a stored template (Anymail refuses
`merge_data` without one), so the issue is stored once per issue through Postmark's
template API (`PUT /templates/<alias>`, or `POST /templates` the first time) under the
alias `advances-issue-<id>`. Triple braces: Mustachio would HTML-escape `{{value}}`
in the text part too, and our values are safe in both parts as they are.
"""

from typing import Any

from anymail.exceptions import AnymailRequestsAPIError

from newsletter.composing import RenderedIssue
from newsletter.esp.batch import StoredTemplateAdapter

# Postmark's answer when no template has that alias.
TEMPLATE_NOT_FOUND = 1101


class PostmarkAdapter(StoredTemplateAdapter):
    name = "postmark"
    batch_limit = 500  # Postmark: at most 500 messages per batch call
    merge_format = "{{{{{{{}}}}}}}"  # {{{name}}}

    def store_template(self, backend: Any, name: str, merged: RenderedIssue) -> None:
        content = {"Name": name, "Subject": merged.subject, "HtmlBody": merged.html}
        content["TextBody"] = merged.text
        response = self._call(backend, "PUT", f"templates/{name}", content)
        if response.status_code == 200:
            return
        if _error_code(response) != TEMPLATE_NOT_FOUND:
            raise _api_error(response, "updating the issue's template")
        content.update(Alias=name, TemplateType="Standard")
        response = self._call(backend, "POST", "templates", content)
        if response.status_code == 200:
            return
        # Another worker process may have created it between our update and create.
        del content["Alias"], content["TemplateType"]
        if self._call(backend, "PUT", f"templates/{name}", content).status_code != 200:
            raise _api_error(response, "creating the issue's template")

    def _call(self, backend: Any, method: str, path: str, content: dict[str, str]) -> Any:
        return backend.session.request(
            method,
            backend.api_url + path,
            json=content,
            headers={"X-Postmark-Server-Token": backend.server_token, "Accept": "application/json"},
            timeout=backend.timeout,
        )


def _error_code(response: Any) -> int | None:
    try:
        return int(response.json().get("ErrorCode"))
    except (ValueError, TypeError, AttributeError):
        return None


def _api_error(response: Any, doing: str) -> AnymailRequestsAPIError:
    return AnymailRequestsAPIError(
        f"Postmark answered {response.status_code} {doing}: {response.text[:500]}",
        status_code=response.status_code,
        response=response,
    )
