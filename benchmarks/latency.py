"""Confirmation latency during a bulk send: does a new reader wait behind the list?

Starts the workers with the operators' own command line (`make worker`, and for
comparison `make worker QUEUES=transactional,bulk`: one process serving both queues),
sends an issue to 100,000 readers through the Mailgun backend to the fake ESP, and
while it runs signs 20 readers up through the real signup view, one every 0.4 s. The
latency of each is from just before its signup request to the moment the fake ESP
accepted its confirmation email. Writes its own section of benchmarks/RESULTS.md.

    make latency
    .venv/bin/python benchmarks/latency.py --readers 20000 --configs default --no-write

PostgreSQL (a database of its own, BENCH_DATABASE, dropped and created) and Redis
(BENCH_REDIS_URL, flushed) on 127.0.0.1.
"""

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field

import harness
from harness import log

DATABASE = os.environ.get("BENCH_DATABASE", "advances_latency")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")

# What each configuration runs, as an operator would type it after `make worker`.
CONFIGS = {
    "default": ([], 2, "`make worker` (two processes: transactional, bulk)"),
    "one-process": (
        ["QUEUES=transactional,bulk"],
        1,
        "`make worker QUEUES=transactional,bulk` (one process for both queues)",
    ),
}


@dataclass
class Signup:
    email: str
    requested_at: float
    accepted_at: float | None = None
    during_send: bool = False


@dataclass
class Run:
    config: str
    readers: int
    send_seconds: float = 0.0
    signups: list[Signup] = field(default_factory=list)

    def latencies(self) -> list[float]:
        return [s.accepted_at - s.requested_at for s in self.signups if s.accepted_at]

    def summary(self) -> dict:
        values = self.latencies()
        return {
            "scenario": "confirmation-latency",
            "config": self.config,
            "readers": self.readers,
            "send_seconds": round(self.send_seconds, 2),
            "signups": len(self.signups),
            "confirmed": len(values),
            "during_send": sum(s.during_send for s in self.signups),
            "p50_seconds": round(harness.percentile(values, 0.5), 3) if values else None,
            "p99_seconds": round(harness.percentile(values, 0.99), 3) if values else None,
            "max_seconds": round(max(values), 3) if values else None,
        }


def watch(esp_url: str, signups: list[Signup], stop: threading.Event) -> None:
    """Poll the fake ESP for each pending signup's confirmation."""
    while not stop.is_set() or any(s.accepted_at is None for s in signups):
        for signup in list(signups):
            if signup.accepted_at is None:
                found = harness.accepted_for(esp_url, signup.email)
                if found:
                    signup.accepted_at = min(entry["accepted_at"] for entry in found)
        if stop.wait(0.05) and all(s.accepted_at for s in signups):
            return


def run_config(name: str, *, env: dict, esp_url: str, readers: int, count: int) -> Run:
    import django

    django.setup()
    import redis
    from django.db import connection
    from django.db.models import Max
    from django.test import Client
    from django.urls import reverse

    from newsletter import sending
    from newsletter.models import Delivery, Issue, Subscriber

    args, nodes, _ = CONFIGS[name]
    harness.seed_readers(DATABASE, readers)  # the same list, and no earlier issue's rows
    redis.Redis.from_url(REDIS_URL).flushdb()
    harness.esp_post(esp_url, "/_fake/reset")
    Subscriber.objects.filter(email__startswith="signup-").delete()
    issue_id = harness.new_issue(env, f"latency-{name}-{int(time.time())}")
    connection.close()
    worker = harness.Worker(env, args, harness.WORK / f"latency-{name}.log")
    run = Run(config=name, readers=readers)
    try:
        worker.wait_ready(nodes)
        log("latency", f"{name}: sending to {readers:,} readers")
        started = time.monotonic()
        sending.start_issue(issue_id=issue_id)
        stop = threading.Event()
        poller = threading.Thread(target=watch, args=(esp_url, run.signups, stop), daemon=True)
        poller.start()
        client = Client()
        time.sleep(1.0)
        for n in range(count):
            email = f"signup-{name}-{n}@example.com"
            signup = Signup(email=email, requested_at=time.time())
            response = client.post(reverse("newsletter:subscribe"), {"email": email})
            assert response.status_code == 302, response.status_code
            run.signups.append(signup)
            time.sleep(0.4)
        while Issue.objects.get(pk=issue_id).status == Issue.Status.SENDING:
            time.sleep(0.2)
        run.send_seconds = time.monotonic() - started
        stop.set()
        poller.join(timeout=30)
        last_sent = Delivery.objects.filter(issue_id=issue_id).aggregate(last=Max("sent_at"))
        assert last_sent["last"] is not None
        for signup in run.signups:
            # Still during the send if its confirmation beat the last reader's copy.
            signup.during_send = bool(
                signup.accepted_at and signup.accepted_at < last_sent["last"].timestamp()
            )
    finally:
        connection.close()
        worker.stop()
    return run


def section(runs: list[Run], readers: int) -> str:
    lines = [
        "## Confirmation latency during a bulk send",
        "",
        f"Run on {harness.stamp()}, {harness.machine()}. Reproduce with `make latency`.",
        f"An issue to {readers:,} readers (Mailgun batch path, PostgreSQL, Redis, the fake",
        "ESP); while it runs, 20 readers sign up through the real signup view, one every",
        "0.4 s. Latency: from just before the signup request to the fake ESP accepting",
        'that reader\'s confirmation email. "During the send": confirmations accepted',
        "before the last reader's copy of the issue.",
        "",
        "| workers started with | send seconds | signups | during the send | p50 s | p99 s "
        "| max s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        s = run.summary()
        lines.append(
            f"| {CONFIGS[run.config][2]} | {s['send_seconds']} | {s['confirmed']}/"
            f"{s['signups']} | {s['during_send']} | {s['p50_seconds']} | {s['p99_seconds']} "
            f"| {s['max_seconds']} |"
        )
    lines += ["", "```", *(json.dumps(run.summary()) for run in runs), "```"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--signups", type=int, default=20)
    parser.add_argument("--configs", default="default,one-process")
    parser.add_argument("--no-write", action="store_true", help="print only; keep RESULTS.md")
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs: {', '.join(sorted(unknown))}")
    harness.WORK.mkdir(parents=True, exist_ok=True)
    runs = []
    with harness.fake_esp() as esp_url:
        env = harness.base_env(
            database=DATABASE, broker=REDIS_URL, redis_url=REDIS_URL, esp_url=esp_url
        )
        os.environ.update(env)
        log("latency", f"resetting database {DATABASE}, seeding {args.readers:,} readers")
        harness.reset_database(env, DATABASE)
        for name in configs:
            run = run_config(name, env=env, esp_url=esp_url, readers=args.readers,
                             count=args.signups)  # fmt: skip
            print(json.dumps(run.summary()), flush=True)
            runs.append(run)
    if not args.no_write:
        harness.write_section("latency", section(runs, args.readers))
        log("latency", "wrote its section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
