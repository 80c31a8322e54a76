"""The JSON API for the center's systems (its patient portal, its CRM): /api/v1/.

Routers over the same services the web pages call: this module parses, authorises and
answers; every change goes through `subscriptions` and lands in the subscriber's
consent log with the key's name. Each system has its own key (newsletter.api_keys),
sent as `Authorization: Bearer <key>`:

- no key, an unknown or a revoked key: 401 with a `WWW-Authenticate: Bearer` challenge,
  nothing changed;
- a read key: look up a reader's status by address (what a read key is for: the key
  holder is a trusted system of the center, and it learns the status, topics and
  language, nothing more), list sent issues; on a write, 403, nothing changed;
- a write key: also add readers (always pending, always double opt-in), change their
  topics, unsubscribe them.

Every key has its own rate limit (NEWSLETTER_API_RATE): over it, 429 with Retry-After.
Bad JSON, unknown fields and invalid values get 400 with the errors per field, never a
500. The schema
(/api/v1/openapi.json) and its browsable docs (/api/v1/docs) are for staff signed in
to the admin.
"""

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django_ratelimit.core import get_usage
from ninja import Field, NinjaAPI, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer
from pydantic import ConfigDict

from newsletter import api_keys, subscriptions
from newsletter.forms import NameField, SafeEmailField
from newsletter.models import ApiKey, Issue, Subscriber, Topic
from newsletter.views.clients import client_ip

# --- Authentication and authorisation ------------------------------------------------

# RFC 6750: every 401 names the scheme the caller must use; its `error` says why a key
# that was sent is not accepted.
CHALLENGE = 'Bearer realm="Advances API"'


class KeyNotAccepted(Exception):
    """401: the key sent is unknown or revoked (no key at all: ninja's
    AuthenticationError)."""


class KeyMayOnlyRead(Exception):
    """403: a read key on a write."""


class TooManyRequests(Exception):
    """429: this key is over NEWSLETTER_API_RATE; it may retry in `retry_after` s."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(retry_after)


class ReadKey(HttpBearer):
    """Any live key (read or write), within its rate limit."""

    openapi_description = "A key made in the admin (API keys), as `Authorization: Bearer <key>`."

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        api_key = api_keys.authenticate(secret=token)
        if api_key is None:
            raise KeyNotAccepted
        # Every request a key makes counts, refused writes too.
        usage = get_usage(
            request,
            group="newsletter.api",
            key=lambda group, request: str(api_key.pk),
            rate=settings.NEWSLETTER_API_RATE,
            increment=True,
        )
        if usage is not None and usage["should_limit"]:
            raise TooManyRequests(retry_after=int(usage["time_left"]))
        self.authorise(api_key)
        return api_key

    def authorise(self, api_key: ApiKey) -> None:
        pass


class WriteKey(ReadKey):
    """A live key with the write scope."""

    def authorise(self, api_key: ApiKey) -> None:
        if not api_keys.may_write(api_key):
            raise KeyMayOnlyRead


api = NinjaAPI(
    title="Advances API",
    version="1",
    description=__doc__ or "",
    urls_namespace="api",
    auth=ReadKey(),
    docs_url="/docs",
    openapi_url="/openapi.json",
    docs_decorator=staff_member_required,
)


def _key(request: HttpRequest) -> ApiKey:
    return request.auth  # type: ignore[attr-defined]


def _origin(request: HttpRequest) -> subscriptions.Origin:
    address = client_ip(request)
    return subscriptions.Origin(
        ip_address=None if address is None else str(address),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        source=f"API key {_key(request).name}",
    )


# --- Errors: 400 with field errors, never a 500 -----------------------------------------


class FieldErrors(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(errors)


def _field_name(location: list[Any]) -> str:
    # ninja reports ["body", "<param>", "field", ...] or ["query", "field"].
    parts = [str(part) for part in location]
    if parts and parts[0] == "body":
        parts = parts[2:] if len(parts) > 2 else []
    elif parts and parts[0] in ("query", "path"):
        parts = parts[1:]
    return ".".join(parts) or "__all__"


def _problem(request: HttpRequest, status: int, detail: str, **headers: str) -> HttpResponse:
    response = api.create_response(request, {"detail": detail}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


@api.exception_handler(AuthenticationError)
def no_key(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _problem(
        request,
        401,
        "This needs an API key, sent as `Authorization: Bearer <key>`.",
        WWW_Authenticate=CHALLENGE,
    )


@api.exception_handler(KeyNotAccepted)
def key_not_accepted(request: HttpRequest, exc: KeyNotAccepted) -> HttpResponse:
    return _problem(
        request,
        401,
        "This API key is unknown or has been revoked.",
        WWW_Authenticate=f'{CHALLENGE}, error="invalid_token"',
    )


@api.exception_handler(KeyMayOnlyRead)
def key_may_only_read(request: HttpRequest, exc: KeyMayOnlyRead) -> HttpResponse:
    return _problem(
        request,
        403,
        "This key may only read: this needs a key with the write scope.",
        WWW_Authenticate=f'{CHALLENGE}, error="insufficient_scope", scope="write"',
    )


@api.exception_handler(TooManyRequests)
def too_many_requests(request: HttpRequest, exc: TooManyRequests) -> HttpResponse:
    return _problem(
        request,
        429,
        f"Too many requests for this key: retry in {exc.retry_after} s.",
        Retry_After=str(exc.retry_after),
    )


@api.exception_handler(ValidationError)
def invalid_request(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        message = "Unknown field." if error.get("type") == "extra_forbidden" else error["msg"]
        errors.setdefault(_field_name(error.get("loc", [])), []).append(message)
    return api.create_response(
        request, {"detail": "The request is not valid.", "errors": errors}, status=400
    )


@api.exception_handler(FieldErrors)
def invalid_fields(request: HttpRequest, exc: FieldErrors) -> HttpResponse:
    return api.create_response(
        request, {"detail": "The request is not valid.", "errors": exc.errors}, status=400
    )


def _cleaned(form: forms.Form) -> dict[str, Any]:
    if not form.is_valid():
        raise FieldErrors(
            {
                field: [str(error["message"]) for error in errors]
                for field, errors in form.errors.get_json_data().items()
            }
        )
    return form.cleaned_data


# --- Validation: the web form's own fields ---------------------------------------------


class TopicSlugsField(forms.ModelMultipleChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(queryset=Topic.objects.all(), to_field_name="slug", **kwargs)


class AddressForm(forms.Form):
    email = SafeEmailField(max_length=254)


class NewSubscriberForm(AddressForm):
    first_name = NameField(max_length=100, required=False)
    topics = TopicSlugsField(required=False)
    language = forms.ChoiceField(choices=settings.LANGUAGES, required=False)


class TopicsForm(AddressForm):
    topics = TopicSlugsField(
        error_messages={"required": "Give at least one topic; to stop all email, unsubscribe."}
    )


def _subscriber(email: str) -> Subscriber:
    subscriber = Subscriber.objects.filter(email=email).first()
    if subscriber is None:
        raise HttpError(404, "No subscriber with that address.")
    return subscriber


# --- Schemas -------------------------------------------------------------------------

STRICT = ConfigDict(extra="forbid")


class NewSubscriberIn(Schema):
    model_config = STRICT
    email: str = Field(max_length=1000, description="The reader's address.")
    first_name: str = Field("", max_length=1000)
    topics: list[str] = Field(
        default_factory=list, max_length=100, description="Topic slugs; empty: the defaults."
    )
    language: str = Field("", max_length=20, description="en or es; empty: en.")


class TopicsIn(Schema):
    model_config = STRICT
    email: str = Field(max_length=1000)
    topics: list[str] = Field(max_length=100, description="Topic slugs, at least one.")


class AddressIn(Schema):
    model_config = STRICT
    email: str = Field(max_length=1000)


class AddressQuery(Schema):
    email: str = Field(max_length=1000)


class Accepted(Schema):
    detail: str


class Problem(Schema):
    detail: str


class InvalidProblem(Schema):
    detail: str
    errors: dict[str, list[str]]


class SubscriberOut(Schema):
    email: str
    status: str = Field(description="pending, active, unsubscribed, bounced or complained.")
    language: str
    topics: list[str]


class UnsubscribedOut(Schema):
    email: str
    status: str
    changed: bool


class IssueOut(Schema):
    subject: str
    slug: str
    language: str
    sent_at: datetime | None
    url: str


def _subscriber_out(subscriber: Subscriber) -> SubscriberOut:
    return SubscriberOut(
        email=subscriber.email,
        status=subscriber.status,
        language=subscriber.language,
        topics=sorted(subscriber.topics.values_list("slug", flat=True)),
    )


DENIED: dict[int, Any] = {400: InvalidProblem, 401: Problem, 403: Problem, 429: Problem}


# --- Endpoints ------------------------------------------------------------------------


@api.post("/subscribers", auth=WriteKey(), response={202: Accepted, **DENIED}, tags=["readers"])
def create_subscriber(request: HttpRequest, payload: NewSubscriberIn):
    """Add a reader: always pending, sent a confirmation email (double opt-in). The
    answer is the same whether the address was new, pending, active or unsubscribed."""
    data = _cleaned(NewSubscriberForm(payload.model_dump()))
    subscriptions.subscribe(
        email=data["email"],
        first_name=data["first_name"],
        topics=data["topics"],
        language=data["language"] or settings.LANGUAGE_CODE,
        source=_key(request).name,
        origin=_origin(request),
    )
    return Status(
        202, {"detail": "If the address can receive Advances, it gets a confirmation email."}
    )


@api.get(
    "/subscribers/status",
    response={200: SubscriberOut, 404: Problem, **DENIED},
    tags=["readers"],
)
def subscriber_status(request: HttpRequest, query: Query[AddressQuery]):
    """A reader's status, topics and language, by address (any key)."""
    data = _cleaned(AddressForm({"email": query.email}))
    return Status(200, _subscriber_out(_subscriber(data["email"])))


@api.put(
    "/subscribers/topics",
    auth=WriteKey(),
    response={200: SubscriberOut, 404: Problem, 409: Problem, **DENIED},
    tags=["readers"],
)
def change_topics(request: HttpRequest, payload: TopicsIn):
    """Replace a pending or active reader's topics."""
    data = _cleaned(TopicsForm({"email": payload.email, "topics": payload.topics}))
    subscriber = _subscriber(data["email"])
    try:
        subscriptions.update_preferences(
            subscriber=subscriber,
            first_name=subscriber.first_name,
            topics=data["topics"],
            origin=_origin(request),
        )
    except subscriptions.NotPending:
        raise HttpError(409, "This reader is not subscribed: they must sign up again.") from None
    subscriber.refresh_from_db()
    return Status(200, _subscriber_out(subscriber))


@api.post(
    "/subscribers/unsubscribe",
    auth=WriteKey(),
    response={200: UnsubscribedOut, 404: Problem, **DENIED},
    tags=["readers"],
)
def unsubscribe(request: HttpRequest, payload: AddressIn):
    """Stop all email to a reader at once. Idempotent: `changed` says whether it did."""
    data = _cleaned(AddressForm({"email": payload.email}))
    subscriber = _subscriber(data["email"])
    changed = subscriptions.unsubscribe(subscriber=subscriber, origin=_origin(request))
    subscriber.refresh_from_db()
    return Status(200, {"email": subscriber.email, "status": subscriber.status, "changed": changed})


@api.get("/issues", response={200: list[IssueOut], **DENIED}, tags=["issues"])
def sent_issues(request: HttpRequest):
    """The issues sent so far, newest first (at most 100), with their archive pages."""
    issues = Issue.objects.filter(status=Issue.Status.SENT).order_by("-sent_at", "-pk")[:100]
    site = settings.SITE_URL.rstrip("/")
    return Status(
        200,
        [
            {
                "subject": issue.subject,
                "slug": issue.slug,
                "language": issue.language,
                "sent_at": issue.sent_at,
                "url": site + reverse("newsletter:archive_issue", args=[issue.slug]),
            }
            for issue in issues
        ],
    )
