"""Demo content for the embedded default: topics, subscribers in every state, and an
admin user. Safe to run again: it updates what it made before and adds nothing twice."""

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.utils import timezone

from newsletter import approval, series
from newsletter.models import (
    EducationPiece,
    Issue,
    IssuePiece,
    SeriesStep,
    Subscriber,
    Topic,
    WelcomeSeries,
)

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

CENTER_PHONE = "(608) 266-6400"
DEMO_CLINICIAN = "Demo Clinician, MD (breast oncology)"

# Drawn from the center's page "Getting a Breast Cancer Second Opinion" (shared/seeds/).
PIECES = [
    {
        "slug": "why-a-second-opinion",
        "title": "Why a second opinion is worth the time",
        "summary": "In most cases there is time to learn about your cancer and get a second "
        "opinion before treatment starts.",
        "body": (
            "Many women newly diagnosed with breast cancer want to get treatment right away. "
            "They feel a strong sense of urgency and jump into the first treatment their "
            "doctor recommends.\n\n"
            "However, in most cases, there is time to do some valuable research to understand "
            "your cancer and therapy options, and to get a second opinion from another doctor.\n\n"
            "Getting the right cancer treatment is important. Having other breast cancer "
            "specialists review your medical records and test results can help you make the "
            "best decisions."
        ),
    },
    {
        "slug": "what-other-specialists-can-change",
        "title": "A treatment plan that fits your cancer",
        "summary": "Each kind of breast cancer specialist can find something different.",
        "body": (
            "A second look from each kind of specialist can change your plan:\n\n"
            "- **Another radiologist** can review your breast imaging tests to see whether "
            "you need more imaging or a biopsy to complete your work-up. This also helps the "
            "other breast specialists plan your treatment options.\n"
            "- **Another pathologist** can look at your tissue. This may change your treatment "
            "plan based on the type of breast cancer you have.\n"
            "- **Another surgeon** may offer you alternatives to standard surgery, suggest "
            "chemotherapy before surgery, or offer reconstructive surgery at the same time as "
            "the breast cancer surgery.\n"
            "- **Another medical oncologist** may find other options or clinical trials of new "
            "treatments for you.\n"
            "- **Another radiation oncologist** may offer you faster or more targeted "
            "treatment options."
        ),
    },
    {
        "slug": "doctors-expect-the-request",
        "title": "Your doctors expect you to ask",
        "summary": "Second opinions are common, and some insurers require one.",
        "body": (
            "Many people with breast cancer decide to get second opinions, and doctors are used "
            "to hearing this request.\n\n"
            "In fact, some insurance companies even require a second opinion before treatment "
            "begins."
        ),
    },
    {
        "slug": "what-to-look-for-in-a-cancer-center",
        "title": "What to look for in a cancer center",
        "summary": "Three things to look for when you choose where to get a second opinion.",
        "body": (
            "If you are looking for a second opinion, look for:\n\n"
            "- A center that practices evidence-based cancer care\n"
            "- A center that offers multidisciplinary clinics and tumor boards\n"
            "- A center that takes part in clinical trials"
        ),
    },
    {
        "slug": "how-to-ask-for-a-second-opinion",
        "title": "How to ask us for a second opinion",
        "summary": f"Call the UW Health Breast Center at {CENTER_PHONE}.",
        "body": (
            "The UW Health Breast Center is part of a large academic medical center that "
            "includes the UW Carbone Cancer Center, a nationally recognized National Cancer "
            "Institute (NCI)-designated comprehensive cancer center.\n\n"
            f"For a second opinion, please call **{CENTER_PHONE}**."
        ),
        "cta_label": f"Call {CENTER_PHONE}",
        "cta_url": "tel:+16082666400",
    },
]
DEMO_ISSUE = {
    "slug": "getting-a-breast-cancer-second-opinion",
    "subject": "Getting a breast cancer second opinion",
    "preheader": "Why it is worth the time, what it can change, and how to ask for one.",
    "intro": "A breast cancer diagnosis can make you want to start treatment right away. "
    "This issue explains why a second opinion is usually worth the time, and how to get one.",
}

# The second-opinion page as a welcome series for new Advances readers: what a second
# opinion is, how to request one, what to bring, questions to ask (from the pieces above).
DEMO_SERIES = "Second opinions: welcome series"
DEMO_STEPS: list[dict[str, Any]] = [
    {
        "delay_days": 0,
        "subject": "What a second opinion is",
        "message": "Thank you for joining Advances. Over the next days we will send you a few "
        "short emails about getting a second opinion: what it is, how to ask for one, what "
        "to bring and what to ask. A second opinion means another specialist looks at your "
        "records and test results before your treatment starts.",
        "piece": "why-a-second-opinion",
    },
    {
        "delay_days": 2,
        "subject": "How to request a second opinion",
        "message": "Asking for a second opinion is normal, and your doctors expect it. "
        "Some insurance companies even require one.",
        "piece": "how-to-ask-for-a-second-opinion",
    },
    {
        "delay_days": 5,
        "subject": "What to bring to your second opinion",
        "message": "Each specialist looks at something different, so bring what they need "
        "to see: your breast imaging tests, your pathology report and tissue slides, and "
        "your doctor's treatment plan. When you call, we can help you gather them.",
        "piece": "what-other-specialists-can-change",
    },
    {
        "delay_days": 10,
        "subject": "Questions to ask about a cancer center",
        "message": "Questions to ask: Does the center practice evidence-based cancer care? "
        "Does it have multidisciplinary clinics and tumor boards? Does it take part in "
        "clinical trials that could be right for me?",
        "piece": "what-to-look-for-in-a-cancer-center",
    },
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
        pieces = []
        for position, fields in enumerate(PIECES, start=1):
            piece, _ = EducationPiece.objects.update_or_create(
                slug=fields["slug"],
                defaults={**fields, "topic": topics["breast-cancer"], "home_position": position},
            )
            pieces.append(piece)
        issue, _ = Issue.objects.get_or_create(slug=DEMO_ISSUE["slug"], defaults=DEMO_ISSUE)
        issue.topics.set([topics["advances"], topics["breast-cancer"]])
        for position, piece in enumerate(pieces, start=1):
            IssuePiece.objects.update_or_create(
                issue=issue, piece=piece, defaults={"position": position}
            )
        today = timezone.localdate()
        EducationPiece.objects.filter(slug__in=[p["slug"] for p in PIECES]).update(
            reviewed_by=DEMO_CLINICIAN, reviewed_on=today, review_due=today + timedelta(days=365)
        )
        self.stdout.write(
            f"Demo content: {len(topics)} topics, {len(SUBSCRIBERS)} subscribers, "
            f"{len(pieces)} education pieces, draft issue '{issue.subject}'."
        )
        admin_user = self.ensure_admin(options["username"])
        reviewer = self.ensure_reviewer()
        if issue.author_id is None:
            Issue.objects.filter(pk=issue.pk).update(author=admin_user)
        issue.refresh_from_db()
        if issue.status == Issue.Status.DRAFT and not approval.approval_state(issue).valid:
            approval.review_issue(
                issue_id=issue.pk,
                reviewer=reviewer,
                decision=approval.Decision.APPROVED,
                comment="Demo approval.",
            )
        self.stdout.write(f"Demo issue approved by the demo reviewer '{reviewer.username}'.")
        demo_series = self.ensure_series(topics["advances"], admin_user, reviewer)
        self.stdout.write(
            f"Demo welcome series '{demo_series.name}': {demo_series.steps.count()} steps, "
            f"approved by '{reviewer.username}'; new Advances readers get it "
            "(manage.py run_series)."
        )

    def ensure_series(self, topic, author, reviewer) -> WelcomeSeries:
        """The second-opinion education as a welcome series, each step approved by the
        demo reviewer. Readers already on the list (the demo subscribers) do not get it;
        a reader who confirms from now on does."""
        demo = WelcomeSeries.objects.filter(topic=topic, language="en").first()
        if demo is None:
            demo = series.create_series(
                series=WelcomeSeries(name=DEMO_SERIES, topic=topic, language="en")
            )
        for position, fields in enumerate(DEMO_STEPS, start=1):
            piece = EducationPiece.objects.get(slug=fields["piece"])
            step = demo.steps.filter(subject=fields["subject"]).first()
            if step is None:
                step = SeriesStep(series=demo, position=position)
            changed = (step.delay_days, step.message, step.piece_id) != (
                fields["delay_days"], fields["message"], piece.pk,
            )  # fmt: skip
            if step.pk is None or changed:
                step.delay_days, step.subject = fields["delay_days"], fields["subject"]
                step.message, step.piece = fields["message"], piece
                series.save_step(step=step, editor=author)
            if not approval.approval_state(step.issue).valid:
                approval.review_issue(
                    issue_id=step.issue_id,
                    reviewer=reviewer,
                    decision=approval.Decision.APPROVED,
                    comment="Demo approval.",
                )
            series.open_step(step_id=step.pk)
        return demo

    def ensure_reviewer(self):
        """A clinical reviewer who did not write the demo issue (rule 9). Log in with the
        same password as the admin user."""
        User = get_user_model()
        admin_user = User.objects.filter(is_superuser=True).order_by("pk").first()
        reviewer, created = User.objects.get_or_create(
            username="reviewer",
            defaults={"email": "reviewer@example.org", "is_staff": True,
                      "first_name": "Demo", "last_name": "Reviewer"},
        )  # fmt: skip
        if created and admin_user is not None:
            reviewer.password = admin_user.password
            reviewer.save(update_fields=["password"])
        reviewer.groups.add(Group.objects.get(name=approval.REVIEWERS_GROUP))
        return reviewer

    def ensure_admin(self, username: str):
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
        self.stdout.write(f"Admin login: {username} / {shown} (reviewer: reviewer, same password)")
        return user
