"""Time django-newsletter 1.2.1 sending one newsletter to N subscribers.

Run with the dn-venv python (see setup.sh) and ``FAKE_ESP_URL`` set to a running fake ESP:

    FAKE_ESP_URL=http://127.0.0.1:8025 ../.work/dn-venv/bin/python run.py --subscribers 20000

It migrates and empties the database, creates one Newsletter with N subscribers, one
Message of three articles made from the seed texts and one Submission to all of them (as
the admin's "Create submission" and "Submit" buttons do), then times
``Submission.submit()``: django-newsletter's own sending path, which renders the templates
and sends one message per subscriber through the configured EMAIL_BACKEND (Anymail's
Mailgun backend). It prints one JSON line on stdout; everything else goes to stderr.

``--count-queries`` instead makes a small run (use e.g. ``--subscribers 200``) and reports
what django-newsletter does per recipient: SQL queries, templates rendered, ESP calls and
HTTP connections opened.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
# The text of the three education pieces the Advances benchmark sends (from seed_demo),
# kept beside this script: the baseline reads nothing outside the repository.
DEFAULT_SEEDS_DIR = HERE / "content"
SYSTEM = "django-newsletter 1.2.1"
ARTICLES = 3


def log(message: str) -> None:
    print(f"run.py: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument(
        "--seeds",
        type=Path,
        default=Path(os.environ.get("DN_SEEDS_DIR", DEFAULT_SEEDS_DIR)),
        help="folder of *.txt files that make the message's content",
    )
    parser.add_argument(
        "--via-command",
        action="store_true",
        help="time `manage.py submit_newsletter` (Submission.submit_queue) instead of "
        "calling Submission.submit() directly",
    )
    parser.add_argument(
        "--count-queries",
        action="store_true",
        help="report queries, templates and connections per recipient instead of timing",
    )
    args = parser.parse_args(argv)
    if args.subscribers < 1:
        parser.error("--subscribers must be at least 1")
    return args


# --- Content -------------------------------------------------------------------------------


def split_articles(text: str, count: int) -> list[list[str]]:
    """Split the text's paragraphs, in order, into ``count`` runs of roughly equal length."""
    paragraphs = [" ".join(block.split()) for block in re.split(r"\n\s*\n", text)]
    paragraphs = [p for p in paragraphs if p]
    if len(paragraphs) < count:
        raise SystemExit(f"the seed text has fewer than {count} paragraphs")
    total = sum(len(p) for p in paragraphs)
    chunks: list[list[str]] = [[]]
    done = 0
    for index, paragraph in enumerate(paragraphs):
        chunks_left = count - len(chunks)
        # Start the next run once this paragraph's midpoint is past the current run's share,
        # or when every paragraph left is needed to give each remaining run one.
        past_share = done + len(paragraph) / 2 > total * len(chunks) / count
        if chunks[-1] and chunks_left and (past_share or len(paragraphs) - index == chunks_left):
            chunks.append([])
        chunks[-1].append(paragraph)
        done += len(paragraph)
    return chunks


def load_seed_text(seeds: Path) -> str:
    files = sorted(seeds.glob("*.txt"))
    if not files:
        raise SystemExit(f"no *.txt seed files in {seeds}")
    return "\n\n".join(path.read_text(encoding="utf-8") for path in files)


# --- Fake ESP ------------------------------------------------------------------------------


def esp_stats(esp_url: str) -> dict[str, int]:
    response = requests.get(f"{esp_url}/_fake/stats", timeout=10)
    response.raise_for_status()
    return response.json()


def esp_reset(esp_url: str) -> None:
    requests.post(f"{esp_url}/_fake/reset", timeout=10).raise_for_status()


# --- Django --------------------------------------------------------------------------------


def setup_django() -> None:
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_project.settings")
    import django

    django.setup()

    import newsletter

    # Advances has its own `newsletter` package; make sure this is django-newsletter's.
    location = Path(newsletter.__file__).resolve()
    if "site-packages" not in location.parts:
        raise SystemExit(f"`newsletter` resolves to {location}, not django-newsletter")


def prepare(subscribers: int, seed_text: str) -> int:
    """Create a fresh newsletter, its subscribers, a message and a prepared submission;
    return the submission's id."""
    from django.conf import settings
    from django.contrib.sites.models import Site
    from django.core.management import call_command
    from django.utils.timezone import now

    from newsletter.models import Article, Message, Newsletter, Submission, Subscription

    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)

    site, _ = Site.objects.update_or_create(
        pk=settings.SITE_ID, defaults={"domain": "advances.example.org", "name": "Advances"}
    )
    Site.objects.clear_cache()

    newsletter = Newsletter.objects.create(
        title="Advances",
        slug="advances",
        email="advances@mg.example.org",
        sender="Advances",
    )
    newsletter.site.set([site])

    subscribed_at = now()
    Subscription.objects.bulk_create(
        (
            Subscription(
                newsletter=newsletter,
                name_field=f"Subscriber {i}",
                email_field=f"subscriber{i:06d}@example.com",
                subscribed=True,
                subscribe_date=subscribed_at,
            )
            for i in range(subscribers)
        ),
        batch_size=1000,
    )

    lines = [line.strip() for line in seed_text.splitlines() if line.strip()]
    message = Message.objects.create(
        title=lines[0][:200], slug="seed-message", newsletter=newsletter
    )
    for number, paragraphs in enumerate(split_articles(seed_text, ARTICLES), start=1):
        Article.objects.create(
            post=message,
            sortorder=number * 10,
            title=f"Part {number} of {ARTICLES}",
            text="\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs),
        )

    # What the admin's "Create submission" (MessageAdmin.submit) and then "Submit"
    # (SubmissionAdmin.submit) buttons do.
    submission = Submission.from_message(message, site=site)
    submission.publish_date = now()
    submission.prepared = True
    submission.save()
    return submission.pk


def runqueue_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat), or
    0.0 where that is not available."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def send(submission_id: int, via_command: bool) -> tuple[float, float, float]:
    """Send the submission the way django-newsletter does; return the wall-clock seconds,
    this process's CPU seconds and the seconds it waited for a CPU."""
    from django.core.management import call_command

    from newsletter.models import Submission

    submission = None
    if not via_command:
        # A fresh instance, as Submission.submit_queue() would load it.
        submission = Submission.objects.get(pk=submission_id)
    start, start_cpu, start_wait = time.perf_counter(), time.process_time(), runqueue_wait()
    if submission is None:
        call_command("submit_newsletter", verbosity=0)
    else:
        submission.submit()
    return (
        time.perf_counter() - start,
        time.process_time() - start_cpu,
        runqueue_wait() - start_wait,
    )


def check_sent(submission_id: int, stats: dict[str, int], subscribers: int) -> None:
    from newsletter.models import Submission

    problems = []
    if not Submission.objects.get(pk=submission_id).sent:
        problems.append("the submission is not marked sent")
    if stats["accepted"] != subscribers:
        problems.append(f"the ESP accepted {stats['accepted']} recipients, not {subscribers}")
    if stats["unique_recipients"] != subscribers or stats["duplicates"]:
        problems.append(
            f"{stats['unique_recipients']} unique recipients, {stats['duplicates']} duplicates"
        )
    if problems:
        raise SystemExit("run.py: FAILED: " + "; ".join(problems) + f" (stats: {stats})")


def versions() -> dict[str, str]:
    from importlib.metadata import version

    from django.db import connection

    return {
        "django": version("Django"),
        "anymail": version("django-anymail"),
        "database": connection.vendor,
    }


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- Per-recipient counts ------------------------------------------------------------------


def count_per_recipient(submission_id: int, subscribers: int) -> dict[str, Any]:
    """Send once with SQL queries, template renders and HTTP connects counted."""
    from django.db import connection
    from django.template.backends.django import Template
    from django.test.utils import CaptureQueriesContext
    from urllib3.connection import HTTPConnection

    counts: Counter[str] = Counter()

    def counting(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return function(*args, **kwargs)

        return wrapper

    render, connect = Template.render, HTTPConnection.connect
    Template.render = counting("templates", render)  # type: ignore[method-assign]
    HTTPConnection.connect = counting("connections", connect)  # type: ignore[method-assign]
    try:
        with CaptureQueriesContext(connection) as captured:
            seconds, _, _ = send(submission_id, via_command=False)
    finally:
        Template.render = render  # type: ignore[method-assign]
        HTTPConnection.connect = connect  # type: ignore[method-assign]

    statements = Counter(
        # Literal values become "?" and a SELECT's column list "…", so that equal statements
        # group together and stay readable.
        re.sub(
            r"'[^']*'|\b\d+\b", "?", re.sub(r"^SELECT .*? FROM ", "SELECT ... FROM ", query["sql"])
        )
        for query in captured.captured_queries
    )
    queries = len(captured.captured_queries)
    return {
        "seconds": round(seconds, 3),
        "queries": queries,
        "queries_per_recipient": round(queries / subscribers, 3),
        "templates_rendered_per_recipient": round(counts["templates"] / subscribers, 3),
        "http_connections_per_recipient": round(counts["connections"] / subscribers, 3),
        "statements": [
            {"count": count, "sql": sql[:200]} for sql, count in statements.most_common()
        ],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    esp_url = os.environ.get("FAKE_ESP_URL", "").rstrip("/")
    if not esp_url:
        raise SystemExit("run.py: set FAKE_ESP_URL to the fake ESP's URL")
    seed_text = load_seed_text(args.seeds)

    setup_django()
    log(f"preparing {args.subscribers} subscribers")
    submission_id = prepare(args.subscribers, seed_text)
    esp_reset(esp_url)

    if args.count_queries:
        result = count_per_recipient(submission_id, args.subscribers)
        stats = esp_stats(esp_url)
        check_sent(submission_id, stats, args.subscribers)
        result = {
            "system": SYSTEM,
            "subscribers": args.subscribers,
            **result,
            "esp_calls_per_recipient": round(stats["calls"] / args.subscribers, 3),
            **versions(),
        }
        print(json.dumps(result), flush=True)
        return 0

    log(f"sending to {args.subscribers} subscribers")
    seconds, cpu_seconds, wait_seconds = send(submission_id, args.via_command)
    stats = esp_stats(esp_url)
    check_sent(submission_id, stats, args.subscribers)
    result = {
        "system": SYSTEM,
        "subscribers": args.subscribers,
        "seconds": round(seconds, 3),
        "recipients_per_second": round(stats["accepted"] / seconds, 1),
        "esp_calls": stats["calls"],
        "accepted": stats["accepted"],
        "peak_rss_mb": peak_rss_mb(),
        **versions(),
        # CPU time of this (single-threaded) sending process during the send, and the time
        # it was ready to run but other processes had the CPUs: on a busy machine the
        # wall-clock rate drops while the first stays put and the second grows.
        "sender_cpu_seconds": round(cpu_seconds, 3),
        "sender_cpu_wait_seconds": round(wait_seconds, 3),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
