"""Start (or resume) sending an issue from the shell; with --wait, show progress until it
ends, riding out a database that goes away for a while (a restart, a failover)."""

import time

from django.core.management.base import BaseCommand, CommandError

from newsletter import approval, leases, sending
from newsletter.models import Issue

# While the database is away: ask again after 1 s, then 2, 4, ... up to this.
OUTAGE_RETRY_CAP_SECONDS = 10
# Without a terminal (a log, CI), one progress line this often instead of a redrawn one.
LOG_EVERY_SECONDS = 5


def duration(seconds: float) -> str:
    """A short human duration: 45 s, 3 min 20 s, 2 h 05 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Command(BaseCommand):
    help = "Send an issue to its readers: start a draft or scheduled issue, or resume a paused one."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Show progress until it ends; exit non-zero if it ends paused or cancelled.",
        )

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
        redraw = self.stdout.isatty()
        last_line = 0.0
        outage_since: float | None = None
        retry_in = 1.0
        while True:
            try:
                issue.refresh_from_db()
                progress = sending.issue_progress(issue)
            except leases.DATABASE_ERRORS as error:
                leases.forget_broken_connection()
                if outage_since is None:
                    outage_since = time.monotonic()
                    first_line = str(error).strip().splitlines()[:1]
                    detail = first_line[0] if first_line else type(error).__name__
                    self.stdout.write(
                        ("\n" if redraw else "") + f"Database unavailable ({detail})."
                    )
                waited = duration(time.monotonic() - outage_since)
                self.stdout.write(
                    f"database unavailable, retrying in {duration(retry_in)} (down {waited})"
                )
                time.sleep(retry_in)
                retry_in = min(retry_in * 2, OUTAGE_RETRY_CAP_SECONDS)
                continue
            if outage_since is not None:
                self.stdout.write(
                    f"The database is back after {duration(time.monotonic() - outage_since)}."
                )
                outage_since, retry_in = None, 1.0
            sending_now = issue.status == Issue.Status.SENDING
            now = time.monotonic()
            if redraw or not sending_now or now - last_line >= LOG_EVERY_SECONDS:
                line = self.progress_line(progress)
                if redraw:
                    self.stdout.write("\r\033[K" + line, ending="")
                    self.stdout.flush()
                else:
                    self.stdout.write(line)
                last_line = now
            if not sending_now:
                self.stdout.write(("\n" if redraw else "") + f"The issue is {issue.status}.")
                if issue.last_error:
                    self.stdout.write(issue.last_error)
                if issue.status in (Issue.Status.PAUSED, Issue.Status.CANCELLED):
                    raise CommandError(f"The send ended {issue.status}, not sent.")
                return
            time.sleep(1)

    @staticmethod
    def progress_line(progress: sending.Progress) -> str:
        width = 30
        total = progress.total or 1
        filled = width * progress.done // total
        if progress.seconds_left is None:
            left = "time left: estimating"
        elif progress.done >= progress.total:
            left = "done"
        else:
            left = f"about {duration(progress.seconds_left)} left"
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {progress.done:,}/{progress.total:,}"
            f" ({100 * progress.done // total}%)  sent {progress.counts['sent']:,}"
            f"  failed {progress.counts['failed']:,}  skipped {progress.counts['skipped']:,}"
            f"  {progress.rate:,.0f}/s  {left}"
        )
