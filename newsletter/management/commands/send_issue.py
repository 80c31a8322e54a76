"""Start (or resume) sending an issue from the shell; with --wait, show progress."""

import time

from django.core.management.base import BaseCommand, CommandError

from newsletter import approval, sending
from newsletter.models import Issue


class Command(BaseCommand):
    help = "Send an issue to its readers: start a draft or scheduled issue, or resume a paused one."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--wait", action="store_true", help="Show progress until it ends.")

    def handle(self, *args, **options):
        issue = Issue.objects.filter(slug=options["slug"]).first()
        if issue is None:
            raise CommandError(f"No issue with the slug {options['slug']!r}.")
        if issue.status == Issue.Status.PAUSED:
            queued = sending.resume_issue(issue_id=issue.pk)
            self.stdout.write(f"Resumed: {queued} readers still to go.")
        elif issue.status in (Issue.Status.DRAFT, Issue.Status.SCHEDULED):
            try:
                queued = sending.start_issue(issue_id=issue.pk)
            except approval.ApprovalMissing as error:
                raise CommandError(f"Approval missing: {error}") from error
            self.stdout.write(f"Sending to {queued} readers.")
        elif issue.status != Issue.Status.SENDING:
            raise CommandError(f"The issue is {issue.status}; there is nothing to send.")
        if options["wait"]:
            self.wait(issue)

    def wait(self, issue: Issue) -> None:
        width = 40
        while True:
            issue.refresh_from_db()
            progress = sending.issue_progress(issue)
            total = progress.total or 1
            filled = width * progress.done // total
            self.stdout.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {progress.done}/{progress.total}"
                f" sent {progress.counts['sent']} failed {progress.counts['failed']}"
                f" skipped {progress.counts['skipped']} {progress.rate:.1f}/s",
                ending="",
            )
            self.stdout.flush()
            if issue.status != Issue.Status.SENDING:
                self.stdout.write(f"\nThe issue is {issue.status}.")
                if issue.last_error:
                    self.stdout.write(issue.last_error)
                return
            time.sleep(1)
