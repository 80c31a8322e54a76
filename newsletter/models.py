"""Advances' data and its constraints. Rules live in the service modules."""

import secrets

from django.db import models
from django.db.models.functions import Lower


def new_subscriber_secret() -> str:
    return secrets.token_urlsafe(12)


class Topic(models.Model):
    """Something a reader can choose to hear about: the main Advances list, and more."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    is_default = models.BooleanField(default=False, help_text="Offered ticked on the signup form.")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    email = models.EmailField(max_length=254, unique=True)
    first_name = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    topics = models.ManyToManyField(Topic, blank=True, related_name="subscribers")
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


class ConsentEvent(models.Model):
    """One line of the append-only consent log: what happened, when, where, and the
    exact wording the reader was shown."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", "Signed up"
        CONFIRM = "confirm", "Confirmed"
        PREFERENCES = "preferences", "Changed preferences"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
        SUPPRESSED = "suppressed", "Suppressed"
        IMPORTED = "imported", "Imported"
        ERASED = "erased", "Erased"

    subscriber = models.ForeignKey(
        Subscriber, null=True, on_delete=models.SET_NULL, related_name="consent_events"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    source = models.CharField(
        max_length=200, blank=True, help_text="The page, email link or tool it came through."
    )
    wording = models.TextField(blank=True, help_text="The consent text shown, word for word.")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M}"
