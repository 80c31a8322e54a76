"""Demo content for the embedded default: topics, subscribers in every state, and an
admin user. Safe to run again: it updates what it made before and adds nothing twice."""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from newsletter.models import Subscriber, Topic

TOPICS = [
    ("advances", "Advances", "The cancer center's patient-education newsletter.", True),
    (
        "breast-cancer",
        "Breast cancer",
        "Diagnosis, second opinions, treatment and recovery.",
        False,
    ),
    ("clinical-trials", "Clinical trials", "New studies open to patients.", False),
    ("survivorship", "Survivorship", "Life during and after treatment.", False),
]

SUBSCRIBERS = [
    ("ada.active@example.com", "Ada", Subscriber.Status.ACTIVE, ["advances", "breast-cancer"]),
    ("ben.active@example.com", "Ben", Subscriber.Status.ACTIVE, ["advances"]),
    ("cara.active@example.com", "", Subscriber.Status.ACTIVE, ["advances", "clinical-trials"]),
    ("dan.pending@example.com", "Dan", Subscriber.Status.PENDING, ["advances"]),
    ("eve.unsubscribed@example.com", "Eve", Subscriber.Status.UNSUBSCRIBED, ["advances"]),
    ("fay.bounced@example.com", "Fay", Subscriber.Status.BOUNCED, ["advances"]),
    ("gil.complained@example.com", "Gil", Subscriber.Status.COMPLAINED, ["advances"]),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo topics, subscribers and admin user."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options):
        topics = {}
        for position, (slug, name, description, is_default) in enumerate(TOPICS):
            topics[slug], _ = Topic.objects.update_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "description": description,
                    "is_default": is_default,
                    "position": position,
                },
            )
        now = timezone.now()
        for email, first_name, status, slugs in SUBSCRIBERS:
            subscriber, _ = Subscriber.objects.update_or_create(
                email=email,
                defaults={
                    "first_name": first_name,
                    "status": status,
                    "confirmed_at": None if status == Subscriber.Status.PENDING else now,
                },
            )
            subscriber.topics.set([topics[slug] for slug in slugs])
        self.stdout.write(f"Demo content: {len(topics)} topics, {len(SUBSCRIBERS)} subscribers.")
        self.ensure_admin(options["username"])

    def ensure_admin(self, username: str) -> None:
        User = get_user_model()
        # The generated password is kept beside the SQLite database so that every
        # `make run` can print it; DJANGO_SUPERUSER_PASSWORD always wins.
        password_file = Path(settings.VAR_DIR) / "admin-password"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        user = User.objects.filter(username=username).first()
        if not password and user is None:
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        if user is None:
            user = User.objects.create_superuser(username, "admin@example.org", password)
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        if not password and password_file.exists():
            password = password_file.read_text().strip()
        shown = password or "(unchanged; set DJANGO_SUPERUSER_PASSWORD to reset it)"
        self.stdout.write(f"Admin login: {username} / {shown}")
