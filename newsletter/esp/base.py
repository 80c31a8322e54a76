"""What every ESP adapter is: the one place that knows how an ESP takes an issue.

`sending.py` claims a batch of Delivery rows, hands the readers to the configured
adapter, and records each `CallResult` the adapter yields. An adapter never touches
the database: it only turns an issue and its readers into ESP calls, and each call's
answer into a `CallResult`, yielded as soon as that call completes, so a worker that
dies loses at most the calls in flight.

A subclass fills in:
- `name`: the `ESP` setting it serves (Anymail's backend name, or "smtp", "outbox");
- `batch_limit`: recipients per API call when the ESP merges per-recipient values
  itself (Mailgun 1,000, SendGrid 1,000, Resend 100, ...); None means one message per
  recipient;
- `merge_format`: how the ESP names a per-recipient value in bodies and headers, as a
  format string taking the value's name (Mailgun `%recipient.{}%`, SendGrid `:{}`...);
- `needs_template`: whether per-recipient content needs a template stored at the ESP
  (Postmark, Amazon SES), which the adapter creates or updates once per issue
  before its first batch call (`batch.StoredTemplateAdapter`);
- `esp_extra`: Anymail `esp_extra` every batch call carries (e.g. SendGrid's
  `merge_field_format`, Mailjet's `TemplateLanguage`);
- `send`, unless the generic batch (`batch.BatchAdapter`) or per-message
  (`per_message.PerMessageAdapter`) behaviour fits. docs/esps.md says how to add an ESP.
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

from newsletter import composing, emails
from newsletter.composing import RenderedIssue
from newsletter.models import Issue

LINKS = ("unsubscribe", "preferences")


@dataclass(frozen=True)
class Recipient:
    """One reader of one claimed batch: everything needed to address them, no query."""

    delivery_id: int
    subscriber_id: int
    email: str
    first_name: str
    secret: str

    def values(self) -> dict[str, str]:
        """This reader's per-recipient values (salutation and signed links)."""
        links = emails.signed_links(self.subscriber_id, self.secret, LINKS)
        return composing.recipient_values(
            first_name=self.first_name,
            unsubscribe_url=links["unsubscribe"],
            preferences_url=links["preferences"],
        )

    def metadata(self, issue_id: int) -> dict[str, str]:
        # ESP webhooks carry this back, mapping each event to its Delivery row.
        return {"issue": str(issue_id), "delivery": str(self.delivery_id)}


@dataclass
class CallResult:
    """What one ESP call (or one small group of calls) did to its recipients.

    `sent`: (delivery id, ESP message id) per accepted recipient. `rejected`: addresses
    the ESP refused (the reader is suppressed). `failed` + `error`: a permanent API
    error for these recipients. `retry`: the ESP is unavailable now (network, 429,
    5xx); nothing more of the batch was sent and the rest goes back to the queue.
    """

    sent: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    error: str = ""
    retry: Exception | None = None


@lru_cache(maxsize=8)
def snapshot(issue_id: int, subject: str, html: str, text: str) -> RenderedIssue:
    """The issue as frozen when its send started (rendered once, rule 7)."""
    return RenderedIssue(subject=subject, html=html, text=text)


def rendered(issue: Issue) -> RenderedIssue:
    return snapshot(issue.pk, issue.subject, issue.rendered_html, issue.rendered_text)


def call_failed(recipients: list[Recipient], error: Exception) -> CallResult:
    """The CallResult of a call that raised: retry later, or failed for good."""
    if emails.is_retryable(error):
        return CallResult(retry=error)
    return CallResult(failed=[r.delivery_id for r in recipients], error=str(error)[:2000])


class EspAdapter:
    """Sends an issue through one ESP. See the module docstring for what subclasses
    fill in; this base class sends one message per recipient over one connection."""

    name: ClassVar[str] = ""
    batch_limit: ClassVar[int | None] = None
    merge_format: ClassVar[str] = ""
    needs_template: ClassVar[bool] = False
    esp_extra: ClassVar[dict[str, object]] = {}

    def __init__(self, name: str = "") -> None:
        self.esp = name or self.name

    def prepare(self, issue: Issue) -> None:
        """Make the ESP ready for this issue (e.g. store its template). Idempotent and
        cheap when repeated: it is called before every batch. No-op by default."""

    def send(self, issue: Issue, recipients: list[Recipient]) -> Iterator[CallResult]:
        """Send the issue to these readers, yielding a CallResult as each call
        completes. After a result with `retry`, nothing more is sent."""
        raise NotImplementedError

    # Keep each thread's connection to the ESP open from one batch to the next (an HTTP
    # keep-alive session, a boto3 client: both recover from a dropped connection by
    # themselves). Off for SMTP, whose idle sessions the server closes under us.
    reuse_connections: ClassVar[bool] = True

    def connection(self) -> BaseEmailBackend:
        """An open connection to the ESP for this thread; hand it back with `release`."""
        from django.core.mail import get_connection

        path = self.backend_path()
        if not self.reuse_connections:
            backend = get_connection(path)
            backend.open()
            return backend
        # Keyed by the settings it was made from (tests and benchmarks change them).
        key = (
            path or settings.EMAIL_BACKEND,
            repr(sorted(getattr(settings, "ANYMAIL", {}).items())),
        )
        kept: dict[tuple[str, str], BaseEmailBackend] = _kept.__dict__.setdefault("by_key", {})
        backend = kept.get(key)
        if backend is None:
            backend = kept[key] = get_connection(path)
            backend.open()
        return backend

    def backend_path(self) -> str | None:
        """The email backend this adapter sends through (None: settings.EMAIL_BACKEND)."""
        return None

    def release(self, backend: BaseEmailBackend) -> None:
        if not self.reuse_connections:
            backend.close()


# This thread's open connections to ESPs, by the settings they were made from.
_kept = threading.local()
