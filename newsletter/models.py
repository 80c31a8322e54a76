"""Advances' data and its constraints. Rules live in the service modules."""

import calendar
import datetime
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import translation
from django.utils.translation import gettext_lazy as _


def new_subscriber_secret() -> str:
    return secrets.token_urlsafe(12)


def add_months(day: datetime.date, months: int) -> datetime.date:
    """The same day `months` later, or the month's last day (31 Jan + 1 = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


class Topic(models.Model):
    """Something a reader can choose to hear about: the main Advances list, and more."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    is_default = models.BooleanField(
        default=False, help_text=_("Offered ticked on the signup form.")
    )
    position = models.PositiveIntegerField(default=0)
    # The name and description in each other language, e.g. {"es": {"name": "Cáncer de
    # mama", "description": "..."}}; readers see them on that language's pages.
    translations = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name_in(translation.get_language())

    def name_in(self, language: str | None) -> str:
        """The name readers of this language see (the English one where none is set)."""
        return self._translated("name", language) or self.name

    def description_in(self, language: str | None) -> str:
        return self._translated("description", language) or self.description

    def _translated(self, field: str, language: str | None) -> str:
        entry = self.translations.get(language or "", {}) if self.translations else {}
        value = entry.get(field, "") if isinstance(entry, dict) else ""
        return value if isinstance(value, str) else ""


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending confirmation")
        ACTIVE = "active", _("Active")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        BOUNCED = "bounced", _("Bounced")
        COMPLAINED = "complained", _("Complained")

    email = models.EmailField(max_length=254, unique=True)
    first_name = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    topics = models.ManyToManyField(Topic, blank=True, related_name="subscribers")
    # The language of every page and email this reader gets (settings.LANGUAGES).
    language = models.CharField(
        max_length=8, choices=settings.LANGUAGES, default="en", db_index=True
    )
    # Where the signup came from: the on-site form, an embed's name, an API key's name,
    # an import. The consent log keeps the same per event.
    source = models.CharField(max_length=100, blank=True, db_index=True)
    # Signed links carry this; changing it voids every link already sent.
    secret = models.CharField(max_length=32, default=new_subscriber_secret, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # When we last emailed this address about its subscription: repeated signups
    # re-send at most every NEWSLETTER_RESEND_MINUTES.
    last_notified_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("export_subscribers", "Can export subscribers and a subscriber's data"),
            ("import_subscribers", "Can import subscribers from a CSV file"),
            ("erase_subscriber", "Can erase a subscriber's personal data"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email=Lower("email")), name="subscriber_email_lower_case"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["pending", "active", "unsubscribed", "bounced", "complained"]
                ),
                name="subscriber_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.email


class SuppressedAddress(models.Model):
    """An address that must never be put back on the list without the reader's fresh
    double opt-in: erased, bounced or complained. Only a keyed hash is kept, so the
    table names nobody (privacy.address_hash)."""

    class Reason(models.TextChoices):
        ERASED = "erased", _("Erased at the reader's request")
        BOUNCED = "bounced", _("Bounced")
        COMPLAINED = "complained", _("Complained")

    address_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = _("suppressed addresses")

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.address_hash[:12]}…)"


class ConsentEvent(models.Model):
    """One line of the append-only consent log: what happened, when, where, and the
    exact wording the reader was shown."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", _("Signed up")
        CONFIRM = "confirm", _("Confirmed")
        PREFERENCES = "preferences", _("Changed preferences")
        UNSUBSCRIBE = "unsubscribe", _("Unsubscribed")
        SUPPRESSED = "suppressed", _("Suppressed")
        IMPORTED = "imported", _("Imported")
        ERASED = "erased", _("Erased")

    subscriber = models.ForeignKey(
        Subscriber, null=True, on_delete=models.SET_NULL, related_name="consent_events"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    source = models.CharField(
        max_length=200, blank=True, help_text=_("The page, email link or tool it came through.")
    )
    wording = models.TextField(blank=True, help_text=_("The consent text shown, word for word."))
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M}"


class EducationPiece(models.Model):
    """A short, clinically reviewed patient-education text that issues and the home
    page reuse."""

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    summary = models.CharField(max_length=500, help_text=_("One or two plain sentences."))
    body = models.TextField(help_text=_("Markdown. Every image needs alt text."))
    cta_label = models.CharField(_("call-to-action label"), max_length=100, blank=True)
    cta_url = models.URLField(_("call-to-action URL"), blank=True)
    topic = models.ForeignKey(
        Topic, null=True, blank=True, on_delete=models.SET_NULL, related_name="pieces"
    )
    reviewed_by = models.CharField(
        max_length=200, blank=True, help_text=_("Name and credentials of the clinical reviewer.")
    )
    reviewed_on = models.DateField(null=True, blank=True)
    review_due = models.DateField(
        null=True,
        blank=True,
        help_text=_(
            "When the clinical review must be renewed. Left blank: "
            "NEWSLETTER_REVIEW_MONTHS after the review date."
        ),
    )
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default="en")
    # The piece's translations share a group: one piece per language in each
    # (newsletter.translations links them).
    translation_group = models.UUIDField(null=True, blank=True, editable=False, db_index=True)
    needs_translation_review = models.BooleanField(
        default=False,
        help_text=_(
            "A translation not yet checked by a clinician who reads this language: "
            "readers see a note saying so."
        ),
    )
    home_position = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Show on the home page at this position; leave blank to leave it off."),
    )
    # The last person who changed it: they may not approve an issue containing it.
    last_edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cta_label="") | ~models.Q(cta_url=""),
                name="piece_cta_label_needs_url",
            ),
            models.UniqueConstraint(
                fields=["translation_group", "language"], name="piece_one_per_language"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        if self.review_due is None and self.reviewed_on is not None:
            self.review_due = add_months(self.reviewed_on, settings.NEWSLETTER_REVIEW_MONTHS)
        super().save(*args, **kwargs)


class Issue(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        PAUSED = "paused", _("Paused")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    class Kind(models.TextChoices):
        ISSUE = "issue", _("Issue")
        # Owned by a welcome-series step: never archived, never finished (see series.py).
        SERIES_STEP = "series_step", _("Welcome series step")

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ISSUE, editable=False)
    subject = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    preheader = models.CharField(
        max_length=200, blank=True, help_text=_("The line inboxes show after the subject.")
    )
    intro = models.TextField(blank=True, help_text=_("Markdown, shown before the pieces."))
    topics = models.ManyToManyField(
        Topic, related_name="issues", help_text=_("Readers of any of these topics receive it.")
    )
    pieces: "models.ManyToManyField[EducationPiece, IssuePiece]" = models.ManyToManyField(
        EducationPiece, through="IssuePiece", related_name="issues"
    )
    # Sent to readers of this language only.
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default="en")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    scheduled_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # What readers get, frozen when sending starts: later edits change nothing mid-send.
    rendered_html = models.TextField(blank=True, editable=False)
    rendered_text = models.TextField(blank=True, editable=False)
    send_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    error_count = models.PositiveIntegerField(
        default=0, editable=False, help_text=_("ESP calls that failed for good during this send.")
    )
    last_error = models.TextField(blank=True, editable=False)
    # The ledger's figures for this issue (rows per Delivery status, maybe_duplicate),
    # counted at most every few seconds while it sends and once more when it ends, so
    # the progress page never counts a million rows per view, and the figures survive
    # the Delivery rows' retention (newsletter/progress.py).
    progress_counts = models.JSONField(default=dict, blank=True, editable=False)
    progress_counted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When a worker last claimed a batch of it (noted at most every half minute per
    # worker): queued rows with no claim for a lease period have lost their workers.
    last_claim_at = models.DateTimeField(null=True, blank=True, editable=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The last person who changed it: they may not approve it (approval.py).
    last_edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("send_issue", "Can send, schedule, pause, resume and cancel an issue"),
            ("approve_issue", "Can approve an issue (or a series step) for sending"),
        ]

    def __str__(self) -> str:
        return self.subject


class IssuePiece(models.Model):
    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="issue_pieces")
    piece = models.ForeignKey(EducationPiece, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["issue", "piece"], name="issue_piece_once"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.piece}"


class Delivery(models.Model):
    """The ledger: one row per (issue, subscriber), the truth about who got what.

    A batch task claims rows (status sending, a lease, attempts + 1); a row whose
    lease expired belongs to a worker that died and may be claimed again. A sent row
    is never sent again.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")

    # No index of its own: the unique (issue, subscriber) index starts with it. Every
    # index on this table costs an index entry per status update (see Meta.indexes).
    issue = models.ForeignKey(
        Issue, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    subscriber = models.ForeignKey(
        Subscriber, null=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True)
    esp_message_id = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    # Claimed again after a worker died mid-batch: the ESP may have accepted the
    # first attempt, so this reader may have received the issue twice.
    maybe_duplicate = models.BooleanField(default=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["issue", "subscriber"], name="delivery_once_per_reader"
            ),
        ]
        # Partial indexes: each holds only the rows a sending step looks for, so a
        # claim walks the queued rows in id order and never the rows already sent, and
        # a row gains an index entry only when it enters that state (migration 0018
        # also sets the table's fillfactor and autovacuum on PostgreSQL).
        indexes = [
            models.Index(
                fields=["issue", "id"], name="delivery_queued_idx", condition=Q(status="queued")
            ),
            models.Index(
                fields=["issue", "lease_until"],
                name="delivery_leased_idx",
                condition=Q(status="sending"),
            ),
            models.Index(
                fields=["claim"], name="delivery_inflight_idx", condition=Q(status="sending")
            ),
            models.Index(
                fields=["issue"], name="delivery_maybe_dup_idx", condition=Q(maybe_duplicate=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.issue_id}/{self.subscriber_id}: {self.status}"


class DeliveryEvent(models.Model):
    """What the ESP reported about a message: delivered, bounced, complained, ...

    Recorded once per ESP event (webhooks are retried and replayed): `event_key` is
    the ESP's event id, or a digest of the event's own fields where the ESP gives
    none. No address is stored: the event points at its Delivery and Subscriber.
    """

    class Kind(models.TextChoices):
        DELIVERED = "delivered", _("Delivered")
        BOUNCED = "bounced", _("Bounced (hard)")
        SOFT_BOUNCED = "soft_bounced", _("Bounced (soft)")
        COMPLAINED = "complained", _("Complained")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed at the ESP")
        OPENED = "opened", _("Opened")
        CLICKED = "clicked", _("Clicked")
        OTHER = "other", _("Other")

    esp = models.CharField(max_length=30)
    event_key = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Anymail's normalised event type, as the ESP reported it (queued, deferred, ...).
    esp_event_type = models.CharField(max_length=30)
    delivery = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    subscriber = models.ForeignKey(
        Subscriber,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delivery_events",
    )
    message_id = models.CharField(max_length=200, blank=True)
    # The ESP's or receiving server's words (e.g. "550 5.1.1 user unknown").
    description = models.TextField(blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    # When its consequence (suppression) was applied; null while queued.
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["occurred_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["esp", "event_key"], name="delivery_event_once"),
        ]
        indexes = [
            models.Index(fields=["subscriber", "kind", "occurred_at"], name="event_subscriber_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.esp}) at {self.occurred_at:%Y-%m-%d %H:%M}"


class ListSnapshot(models.Model):
    """How many subscribers were in each status on a day: taken once a day by the
    periodic task, so the list-health page can show the list over time."""

    day = models.DateField(unique=True)
    counts = models.JSONField(default=dict)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"List on {self.day}"


class IssueReview(models.Model):
    """A clinical reviewer's decision on one version of an issue: an approval, or a
    request for changes with a comment. An approval holds for exactly the version
    whose fingerprint it records (approval.fingerprint); any edit voids it."""

    class Decision(models.TextChoices):
        APPROVED = "approved", _("Approved")
        CHANGES_REQUESTED = "changes_requested", _("Changes requested")

    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision = models.CharField(max_length=20, choices=Decision.choices)
    comment = models.TextField(blank=True)
    # A SHA-256 of the subject, rendered HTML and text, target topics and language.
    fingerprint = models.CharField(max_length=64)
    # What the reviewer saw, kept so the next reviewer sees what changed since.
    subject = models.CharField(max_length=200)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} at {self.created_at:%Y-%m-%d %H:%M}"


class IssueForReview(Issue):
    """The reviewers' queue in the admin: issues and series steps awaiting approval."""

    class Meta:
        proxy = True
        verbose_name = "issue awaiting review"
        verbose_name_plural = "review queue"


class WelcomeSeries(models.Model):
    """Ordered steps each new reader of a topic (in one language) gets after joining."""

    name = models.CharField(max_length=200)
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="series")
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default="en")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "welcome series"
        constraints = [
            models.UniqueConstraint(fields=["topic", "language"], name="series_per_topic_language"),
        ]

    def __str__(self) -> str:
        return self.name


class SeriesStep(models.Model):
    """One email of a series: an education piece or a short message, sent `delay_days`
    after the reader joined. Its content lives in its own Issue (kind series_step),
    so it is approved, rendered and sent as issues are. Steps go out in the order of
    their delay (position breaks ties between steps of the same day)."""

    series = models.ForeignKey(WelcomeSeries, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=0)
    delay_days = models.PositiveIntegerField(help_text=_("Days after the reader joined."))
    subject = models.CharField(max_length=200)
    message = models.TextField(blank=True, help_text=_("Markdown, shown before the piece."))
    piece = models.ForeignKey(
        EducationPiece, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    issue = models.OneToOneField(
        Issue, on_delete=models.PROTECT, related_name="series_step", editable=False
    )

    class Meta:
        ordering = ["series", "delay_days", "position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(message="") | models.Q(piece__isnull=False),
                name="series_step_has_content",
            ),
        ]

    def __str__(self) -> str:
        return f"Day {self.delay_days}: {self.subject}"


class SeriesEnrolment(models.Model):
    """A reader's place in a series. `started_at` null: the reader was on the topic
    before the series existed, so they do not get it. `stopped_at`: the reader left
    (unsubscribed, suppressed, left the topic or changed language); nothing more of the
    series is sent to them, even if they come back. What each reader got of each step
    is in the Delivery ledger (series.py)."""

    series = models.ForeignKey(WelcomeSeries, on_delete=models.CASCADE, related_name="enrolments")
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="series_enrolments"
    )
    started_at = models.DateTimeField(null=True, blank=True, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "subscriber"], name="enrolment_once"),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id} in {self.series_id}"


class ApiKey(models.Model):
    """One of the center's systems (its portal, its CRM) allowed to use the JSON API.

    Only a SHA-256 hash of the key is kept: the key is shown once, when it is made
    (newsletter.api_keys). The name is the source recorded on every reader it adds and
    in the consent log of everything it changes."""

    class Scope(models.TextChoices):
        READ = "read", _("Read: look up a reader's status, list sent issues")
        WRITE = "write", _("Write: also add readers, change topics, unsubscribe")

    name = models.SlugField(
        max_length=100, unique=True, help_text=_("The system using it, e.g. “patient-portal”.")
    )
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(
        max_length=16, editable=False, help_text=_("The key's first letters.")
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
