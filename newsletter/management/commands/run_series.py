"""Queue the welcome-series steps that are due, once or every N seconds (the periodic
task does the same under Celery beat; this is for the embedded default and cron)."""

import time

from django.core.management.base import BaseCommand

from newsletter import series


class Command(BaseCommand):
    help = (
        "Enrol readers who joined a welcome series' topic and queue every step that is due. "
        "With --every N, keep doing it every N seconds (for `make run`, where tasks run inline)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--every", type=float, default=0, metavar="SECONDS", help="Repeat until stopped."
        )

    def handle(self, *args, **options):
        try:
            self.run(options["every"])
        except KeyboardInterrupt:  # Ctrl-C on `make run`: stop quietly
            return

    def run(self, every: float) -> None:
        while True:
            report = series.run_series()
            if report.enrolled or report.stopped or report.queued or not every:
                self.stdout.write(
                    f"Welcome series: {report.enrolled} readers started, {report.stopped} "
                    f"stopped, {report.queued} emails queued."
                )
            if not every:
                return
            time.sleep(every)
