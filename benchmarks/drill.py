"""The failover drill: three worker nodes over RabbitMQ, one killed with SIGKILL mid-send.

Three worker processes with distinct node names, as three machines would run them
(`make worker QUEUES=bulk,transactional NODE=nodeN`), beat (`make beat`), RabbitMQ as the
broker and Redis for the shared send rate, PostgreSQL, the Mailgun backend and the fake
ESP (slowed, so that every node has calls out). `manage.py send_issue --wait` sends one
issue to 100,000 readers under NEWSLETTER_MAX_RATE; when about a third is sent, node1 is
killed with SIGKILL while it has batches at the ESP. Everything else is default
(a 60 s lease). Reports: every reader served, duplicates against the recipients the
dead node had at the ESP, the measured rate against the cap, and how long the dead
node's rows took to go out again. Writes its own section of benchmarks/RESULTS.md.

    make drill
    .venv/bin/python benchmarks/drill.py --readers 20000 --no-write

BENCH_DATABASE (dropped and created), BENCH_REDIS_URL (flushed) and BENCH_AMQP_URL (its
queues purged) name the services on 127.0.0.1.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import harness
from harness import log

DATABASE = os.environ.get("BENCH_DATABASE", "advances_drill")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def purge_amqp() -> None:
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(AMQP_URL, connect_timeout=5) as amqp:
        channel = amqp.channel()
        for queue in ("transactional", "bulk"):
            try:
                channel.queue_purge(queue)  # type: ignore[attr-defined]
            except NotFound:
                channel = amqp.channel()


def drill(args: argparse.Namespace, esp_url: str) -> dict:
    env = harness.base_env(database=DATABASE, broker=AMQP_URL, redis_url=REDIS_URL, esp_url=esp_url)
    env.update(
        NEWSLETTER_MAX_RATE=str(args.rate),
        NEWSLETTER_BATCH_SIZE=str(args.batch),
    )
    os.environ.update(env)
    log("drill", f"resetting database {DATABASE}, seeding {args.readers:,} readers")
    harness.reset_database(env, DATABASE)
    harness.seed_readers(DATABASE, args.readers)
    issue_id = harness.new_issue(env, f"drill-{int(time.time())}")
    import django

    django.setup()
    import redis
    from django.db import connection
    from django.db.models import Count, Max

    from newsletter.models import Delivery, Issue

    redis.Redis.from_url(REDIS_URL).flushdb()
    purge_amqp()
    harness.esp_post(esp_url, "/_fake/faults", {"delay": args.esp_delay})
    slug = Issue.objects.get(pk=issue_id).slug
    nodes = [
        harness.Worker(
            env,
            ["QUEUES=bulk,transactional", f"NODE=node{n}", f"CONCURRENCY={args.concurrency}"],
            harness.WORK / f"drill-node{n}.log",
        )
        for n in (1, 2, 3)
    ]
    beat_log = (harness.WORK / "drill-beat.log").open("ab")
    beat = subprocess.Popen(
        ["make", "--no-print-directory", "beat"], cwd=harness.ROOT, env=env, stdout=beat_log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    command = None
    try:
        for node in nodes:
            node.wait_ready(1)
        log("drill", f"three nodes ready; sending to {args.readers:,} at {args.rate:,}/s")
        command_log = harness.WORK / "drill-send_issue.log"
        started = time.time()
        command = subprocess.Popen(
            [harness.PYTHON, "manage.py", "send_issue", slug, "--wait"], cwd=harness.ROOT,
            env=env, stdout=command_log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        rows = Delivery.objects.filter(issue_id=issue_id)

        def in_flight() -> dict[int, str]:
            return dict(rows.filter(status=Delivery.Status.SENDING).values_list("pk", "claim"))

        while rows.filter(status=Delivery.Status.SENT).count() < args.readers // 3:
            time.sleep(0.5)
        # Kill while about as many batches are out as the cap keeps out on average (five
        # of nine slots with the defaults): node1 then almost always has some of them.
        enough = max(1, min(3 * args.concurrency, round(args.rate * args.esp_delay / args.batch)))
        deadline = time.monotonic() + 15
        while len(set(in_flight().values())) < enough and time.monotonic() < deadline:
            time.sleep(0.02)
        nodes[0].kill()
        killed_at = time.time()
        at_kill = in_flight()
        log("drill", f"node1 killed with {len(set(at_kill.values()))} claims out in all")
        time.sleep(max(5.0, 3 * args.esp_delay))
        still = in_flight()
        dead = {pk for pk, claim in at_kill.items() if still.get(pk) == claim}
        log("drill", f"node1 had {len(dead):,} readers at the ESP")
        code = command.wait(timeout=args.timeout)
        finished = time.time()
        recovered = rows.filter(pk__in=dead).aggregate(last=Max("sent_at"))["last"]
        last_recovered = recovered.timestamp() if recovered else None
        first_pass = sorted(
            when.timestamp()
            for when in rows.exclude(pk__in=dead).values_list("sent_at", flat=True)
            if when
        )
        counts = dict(rows.values_list("status").annotate(n=Count("pk")).order_by())
        flagged = rows.filter(maybe_duplicate=True).count()
        connection.close()
    finally:
        if command is not None and command.poll() is None:
            command.kill()
        for node in nodes:
            node.stop()
        os.killpg(beat.pid, 15)
        beat.wait(timeout=30)
        beat_log.close()
    stats = harness.esp_get(esp_url, "/_fake/stats")
    assert isinstance(stats, dict)

    # The rate, from the first pass (the dead node's rows come back later by design):
    # three nodes from 5% of the list to the kill, two nodes from the kill to 95%, and
    # the busiest 5 s of all.
    def rate(since: float, until: float) -> float:
        count = sum(1 for when in first_pass if since <= when < until)
        return count / (until - since) if until > since else 0.0

    warm = first_pass[len(first_pass) // 20]
    steady = rate(warm, killed_at)
    after = rate(killed_at + 5, first_pass[len(first_pass) * 19 // 20])
    busiest = 0
    start = 0
    for end, when in enumerate(first_pass):
        while first_pass[start] < when - 5:
            start += 1
        busiest = max(busiest, end - start + 1)
    return {
        "scenario": "failover-drill",
        "readers": args.readers,
        "nodes": 3,
        "concurrency_per_node": args.concurrency,
        "broker": "rabbitmq",
        "lease_seconds": 60,
        "batch": args.batch,
        "esp_delay_seconds": args.esp_delay,
        "send_issue_exit": code,
        "deliveries": counts,
        "esp_unique_recipients": stats["unique_recipients"],
        "esp_duplicates": stats["duplicates"],
        "dead_node_in_flight": len(dead),
        "flagged_maybe_duplicate": flagged,
        "rate_cap": args.rate,
        "steady_rate": round(steady),
        "rate_after_kill": round(after),
        "busiest_5s_rate": round(busiest / 5),
        "recovery_seconds": round(last_recovered - killed_at, 1) if last_recovered else None,
        "total_seconds": round(finished - started, 1),
    }


def section(result: dict) -> str:
    served = result["esp_unique_recipients"] == result["readers"] and set(result["deliveries"]) == {
        "sent"
    }
    within = abs(result["steady_rate"] - result["rate_cap"]) <= 0.1 * result["rate_cap"]
    return "\n".join(
        [
            "## Failover drill: a node killed mid-send over RabbitMQ",
            "",
            f"Run on {harness.stamp()}, {harness.machine()}. Reproduce with `make drill`.",
            f"Three worker nodes (`make worker QUEUES=bulk,transactional NODE=nodeN "
            f"CONCURRENCY={result['concurrency_per_node']}`), beat, RabbitMQ as the broker, Redis",
            "for the shared send rate, PostgreSQL, the fake ESP answering each call after "
            f"{result['esp_delay_seconds']} s; default lease (60 s, renewed while a batch is out).",
            f"One issue to {result['readers']:,} readers (`send_issue --wait`), batches of "
            f"{result['batch']}; node1 killed with SIGKILL a third of the way through.",
            "",
            "| what | measured |",
            "| --- | --- |",
            f"| every reader served | {'yes' if served else 'NO'} "
            f"({result['esp_unique_recipients']:,} of {result['readers']:,}; "
            f"send_issue exit {result['send_issue_exit']}) |",
            f"| readers the dead node had at the ESP | {result['dead_node_in_flight']:,} |",
            f"| duplicates (at the fake ESP) | {result['esp_duplicates']:,} "
            f"(flagged maybe_duplicate: {result['flagged_maybe_duplicate']:,}) |",
            f"| rate: cap; three nodes; two nodes after the kill; busiest 5 s | "
            f"{result['rate_cap']:,}/s; {result['steady_rate']:,}/s "
            f"({'within' if within else 'NOT within'} 10% of the cap); "
            f"{result['rate_after_kill']:,}/s; {result['busiest_5s_rate']:,}/s |",
            f"| dead node's rows sent again after | {result['recovery_seconds']} s |",
            f"| whole send | {result['total_seconds']} s |",
            "",
            "```",
            json.dumps(result),
            "```",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000, help="NEWSLETTER_MAX_RATE")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=3, help="per node")
    parser.add_argument("--esp-delay", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--no-write", action="store_true", help="print only; keep RESULTS.md")
    args = parser.parse_args()
    harness.WORK.mkdir(parents=True, exist_ok=True)
    with harness.fake_esp() as esp_url:
        result = drill(args, esp_url)
    print(json.dumps(result), flush=True)
    if not args.no_write:
        harness.write_section("drill", section(result))
        log("drill", "wrote its section of benchmarks/RESULTS.md")
    return 0 if result["send_issue_exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
