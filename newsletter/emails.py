"""Transactional emails (confirmation, welcome, already subscribed, goodbye, data
export), from templates.

Each carries an HTML and a plain-text part, the postal address, a visible
unsubscribe link and one-click List-Unsubscribe headers (DESIGN.md rule 5). Each is in
its reader's language (rule 10): words, `Content-Language`, `<html lang>`, and links to
the pages in that language.
"""

import smtplib
from dataclasses import replace
from functools import lru_cache

import css_inline
from anymail.exceptions import AnymailAPIError, AnymailRequestsAPIError
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from newsletter import composing
from newsletter.composing import RenderedIssue
from newsletter.models import Issue, Subscriber
from newsletter.subscriptions import SubscriberEmail
from newsletter.tokens import Purpose, token_for

SUBJECTS = {
    SubscriberEmail.CONFIRM: _("Please confirm your Advances subscription"),
    SubscriberEmail.WELCOME: _("Welcome to Advances"),
    SubscriberEmail.ALREADY_SUBSCRIBED: _("You are already subscribed to Advances"),
    SubscriberEmail.GOODBYE: _("You are unsubscribed from Advances"),
}
# Who may still get each email: a confirmation for a subscriber who meanwhile
# confirmed or left would be noise.
STILL_WANTED = {
    SubscriberEmail.CONFIRM: {Subscriber.Status.PENDING},
    SubscriberEmail.WELCOME: {Subscriber.Status.ACTIVE},
    SubscriberEmail.ALREADY_SUBSCRIBED: {Subscriber.Status.ACTIVE},
    SubscriberEmail.GOODBYE: {Subscriber.Status.UNSUBSCRIBED},
}


def absolute_url(path: str) -> str:
    return settings.SITE_URL + path


def subscriber_links(
    subscriber: Subscriber, names: tuple[str, ...] = ("confirm", "unsubscribe", "preferences")
) -> dict[str, str]:
    """Absolute, signed links for this subscriber, one purpose each."""
    return signed_links(subscriber.pk, subscriber.secret, names)


def signed_links(subscriber_id: int, secret: str, names: tuple[str, ...]) -> dict[str, str]:
    return {
        name: link_prefix(name) + token_for(subscriber_id, secret, Purpose(name)) + "/"
        for name in names
    }


def link_prefix(name: str) -> str:
    """The address of a signed link up to its token, for the pages in the active
    language (/es/newsletter/... in Spanish)."""
    return _link_prefix(name, translation.get_language() or settings.LANGUAGE_CODE)


@lru_cache(maxsize=32)
def _link_prefix(name: str, language: str) -> str:
    # Reversed once per process and language, not once per recipient: sending builds
    # two links for every reader of an issue.
    marker = "TOKEN"
    with translation.override(language):
        path = reverse(f"newsletter:{name}", args=[marker])
    return absolute_url(path).rsplit(marker, 1)[0]


def sender_domain() -> str:
    """The domain of DEFAULT_FROM_EMAIL (for the Message-IDs we make)."""
    from email.utils import parseaddr

    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"


def unsubscribe_header(unsubscribe_url: str) -> str:
    mailto = settings.NEWSLETTER_UNSUBSCRIBE_MAILTO
    return f"<{unsubscribe_url}>" + (f", <mailto:{mailto}>" if mailto else "")


def shared_list_headers() -> dict[str, str]:
    """The list headers that are the same for every recipient, and the language of the
    message (the active one: the reader's, or the issue's)."""
    return {
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": settings.NEWSLETTER_LIST_ID,
        "Content-Language": translation.get_language() or settings.LANGUAGE_CODE,
    }


def list_headers(unsubscribe_url: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers that let a mail client unsubscribe in one click."""
    return {"List-Unsubscribe": unsubscribe_header(unsubscribe_url), **shared_list_headers()}


def send_subscriber_email(*, subscriber_id: int, kind: str) -> bool:
    """Send one transactional email about a subscription, if it is still wanted.

    Returns False (and sends nothing) when the subscriber is gone or its state has
    moved on. Network and ESP errors propagate for the task to judge. The email is in
    the subscriber's language.
    """
    email = SubscriberEmail(kind)
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.status not in STILL_WANTED[email]:
        return False
    with translation.override(subscriber.language):
        _send_subscriber_email(subscriber, email)
    return True


def _send_subscriber_email(subscriber: Subscriber, email: SubscriberEmail) -> None:
    links = subscriber_links(subscriber)
    if email == SubscriberEmail.GOODBYE:
        # The way back: the signup page, in the reader's language.
        links["subscribe"] = absolute_url(reverse("newsletter:subscribe"))
    context = {
        "subscriber": subscriber,
        "links": links,
        "confirm_days": settings.NEWSLETTER_CONFIRM_DAYS,
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        "site_url": settings.SITE_URL,
        "subject": str(SUBJECTS[email]),
    }
    message = EmailMultiAlternatives(
        subject=str(SUBJECTS[email]),
        body=render_to_string(f"newsletter/emails/{email}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        headers=list_headers(links["unsubscribe"]),
    )
    html = render_to_string(f"newsletter/emails/{email}.html", context)
    message.attach_alternative(css_inline.inline(html), "text/html")
    message.send()


def is_retryable(error: Exception) -> bool:
    """Whether sending again later can succeed: network errors, 429 and 5xx only (for
    an SMTP relay, its 4xx answers: "try again later")."""
    if isinstance(error, AnymailRequestsAPIError):
        status = error.status_code
        return status is None or status == 429 or status >= 500
    if isinstance(error, AnymailAPIError):
        # Amazon SES (boto3): an HTTP status in the parsed error response, or none at
        # all when the call never reached SES (a connection error from botocore).
        response = error.response if isinstance(error.response, dict) else None
        if response is None:
            return error.__cause__ is not None and _is_network_error(error.__cause__)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status == 429 or status >= 500
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    return isinstance(error, OSError)


def _is_network_error(error: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(error, BotoConnectionError | HTTPClientError | OSError)


def issue_message(
    *,
    rendered: RenderedIssue,
    to: str,
    unsubscribe_url: str,
    headers: dict[str, str] | None = None,
) -> EmailMultiAlternatives:
    """One reader's copy of an issue (already personalised), with list headers."""
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={**list_headers(unsubscribe_url), **(headers or {})},
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def send_issue_test(*, issue_id: int, addresses: list[str], first_name: str = "") -> int:
    """Send a test copy of an issue, marked as a test in its subject, exactly as a
    reader gets it. An address that belongs to a subscriber gets that subscriber's own
    links; any other gets links to the signup page. Returns how many were sent."""
    issue = Issue.objects.filter(pk=issue_id).first()
    if issue is None:
        return 0
    # In the issue's language, as its readers get it: words, links and headers.
    with translation.override(issue.language):
        return _send_issue_test(issue, addresses, first_name)


def _send_issue_test(issue: Issue, addresses: list[str], first_name: str) -> int:
    rendered = composing.render_issue(issue)
    subscribers = {s.email: s for s in Subscriber.objects.filter(email__in=addresses)}
    messages = []
    for address in addresses:
        subscriber = subscribers.get(address)
        if subscriber is None:
            values = composing.preview_values(first_name=first_name)
        else:
            links = subscriber_links(subscriber)
            values = composing.recipient_values(
                first_name=subscriber.first_name,
                unsubscribe_url=links["unsubscribe"],
                preferences_url=links["preferences"],
            )
        personal = rendered.personalise(values)
        messages.append(
            issue_message(
                rendered=replace(personal, subject=f"[TEST] {personal.subject}"),
                to=address,
                unsubscribe_url=values["unsubscribe_url"],
            )
        )
    return get_connection().send_messages(messages) or 0


def send_data_export(*, subscriber_id: int) -> bool:
    """Email a subscriber everything Advances holds about them, as a JSON attachment,
    to their own address only. Returns False when the subscriber is gone (erased
    meanwhile: there is nothing left to send)."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return False
    with translation.override(subscriber.language):
        _send_data_export(subscriber)
    return True


def _send_data_export(subscriber: Subscriber) -> None:
    from newsletter import privacy

    links = subscriber_links(subscriber, ("unsubscribe", "preferences"))
    subject = str(_("Your Advances data"))
    context = {
        "subscriber": subscriber,
        "links": links,
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        "site_url": settings.SITE_URL,
        "subject": subject,
    }
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("newsletter/emails/data_export.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        headers=list_headers(links["unsubscribe"]),
    )
    html = render_to_string("newsletter/emails/data_export.html", context)
    message.attach_alternative(css_inline.inline(html), "text/html")
    message.attach(
        "advances-my-data.json",
        # Bytes, so a name like "Zoë" survives the attachment's base64 encoding intact.
        privacy.subscriber_export_json(subscriber=subscriber).encode("utf-8"),
        "application/json",
    )
    message.send()
