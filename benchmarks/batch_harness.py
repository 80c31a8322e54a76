"""The no-database harness: the same Anymail Mailgun batches, built and sent as fast as
this machine can, with no ledger, no broker and no worker.

Each of `--processes` processes (as many as the benchmark's worker processes) builds
its share of the recipients in memory, then sends them in calls of 1,000 through the
project's own Mailgun adapter (`newsletter.esp.MailgunAdapter`: the same merge data,
signed links, headers and Anymail backend the workers use) to the fake ESP. What the
end-to-end send reaches as a share of this rate is what the ledger, Celery and the
database cost; the rest is the ESP call itself, which no design removes.

    .venv/bin/python benchmarks/batch_harness.py --esp-url http://127.0.0.1:PORT \\
        --issue benchmarks/.work/issue.json --recipients 100000 --processes 2

Prints one JSON line: recipients, seconds, recipients_per_second, cpu_ms_per_1000.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configure(esp_url: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SITE_URL": "https://advances.example.org",
            "LOG_LEVEL": "WARNING",
            "ESP": "mailgun",
            "MAILGUN_API_KEY": "test-key",
            "MAILGUN_SENDER_DOMAIN": "mg.example.org",
            "MAILGUN_API_URL": f"{esp_url}/v3",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def use_stock_parts() -> None:
    """The sending path as it was before its CPU cuts: Django's TimestampSigner for each
    link and Anymail's own Mailgun backend, for a before/after on the same machine."""
    from django.core import signing

    from newsletter import tokens
    from newsletter.esp.mailgun import MailgunAdapter

    def django_token(subscriber_id, secret, purpose):
        signer = signing.TimestampSigner(key=tokens.settings.SECRET_KEY, salt=tokens._salt(purpose))
        return signer.sign_object([subscriber_id, secret])

    tokens.token_for = django_token
    import newsletter.emails

    newsletter.emails.token_for = django_token
    MailgunAdapter.backend_path = lambda self: None  # type: ignore[method-assign]


def send_share(
    esp_url: str, issue_file: str, first: int, count: int, stock: bool, ready, go, out
) -> None:
    configure(esp_url)
    from newsletter.esp import Recipient, adapter_for
    from newsletter.models import Issue

    if stock:
        use_stock_parts()

    frozen = json.loads(Path(issue_file).read_text())
    issue = Issue(
        pk=frozen["id"],
        subject=frozen["subject"],
        rendered_html=frozen["html"],
        rendered_text=frozen["text"],
    )
    # The readers as the claim hands them over: id, address, name, secret.
    # md5 only because the benchmark's seed SQL makes each secret as md5(n).
    secrets = [hashlib.md5(str(n).encode()).hexdigest() for n in range(first, first + count)]  # noqa: S324
    recipients = [
        Recipient(n, n, f"bench{n}@example.com", f"Reader{n}", secrets[n - first])
        for n in range(first, first + count)
    ]
    adapter = adapter_for("mailgun")
    limit = adapter.batch_limit or 1000
    ready.put(True)
    go.wait()
    cpu = time.process_time()
    sent = 0
    for begin in range(0, len(recipients), limit):
        adapter.prepare(issue)
        for result in adapter.send(issue, recipients[begin : begin + limit]):
            if result.retry or result.failed:
                raise SystemExit(f"the fake ESP refused a call: {result.error or result.retry}")
            sent += len(result.sent)
    out.put({"sent": sent, "cpu": time.process_time() - cpu, "end": time.time()})


def run(
    esp_url: str, issue_file: str, recipients: int, processes: int, *, stock: bool = False
) -> dict:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    ready: multiprocessing.Queue = multiprocessing.Queue()
    go = multiprocessing.Event()
    share = recipients // processes
    workers = [
        multiprocessing.Process(
            target=send_share,
            args=(esp_url, issue_file, 1 + n * share, share, stock, ready, go, queue),
        )
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    # The clock starts once every process has set up (Django, its recipients).
    for _ in workers:
        ready.get(timeout=120)
    start_at = time.time()
    go.set()
    results = [queue.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    seconds = max(r["end"] for r in results) - start_at
    sent = sum(r["sent"] for r in results)
    cpu = sum(r["cpu"] for r in results)
    return {
        "scenario": "harness-stock" if stock else "harness",
        "recipients": sent,
        "processes": processes,
        "seconds": round(seconds, 2),
        "recipients_per_second": round(sent / seconds),
        "cpu_ms_per_1000": round(cpu / sent * 1_000_000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--esp-url", required=True)
    parser.add_argument("--issue", required=True, help="JSON: id, subject, html, text")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--stock",
        action="store_true",
        help="Django's signer and Anymail's own Mailgun backend (the path before its CPU cuts)",
    )
    args = parser.parse_args()
    outcome = run(args.esp_url, args.issue, args.recipients, args.processes, stock=args.stock)
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
