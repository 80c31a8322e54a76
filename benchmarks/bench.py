"""The dispatch benchmark: Advances sending one issue to a large list, measured.

Runs on this machine's PostgreSQL and Redis with real Celery workers, the real Anymail
backends and the fake ESP (tests/fake_esp.py) in its own process, and in the same run
django-newsletter 1.2.1 sending the same content to the same kind of fake ESP
(benchmarks/django_newsletter/). Prints a JSON line per scenario and writes
benchmarks/RESULTS.md.

    make bench                       # the whole run
    .venv/bin/python benchmarks/bench.py --subscribers 20000 --skip-million --skip-baseline
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
PG = "postgres://postgres@127.0.0.1:5432"
DATABASE = "advances_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
ESP_PORT = 18025
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def base_env(esp: str, batch_size: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{ESP_PORT}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SITE_URL": "https://advances.example.org",
        "DATABASE_URL": f"{PG}/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "LOG_LEVEL": "WARNING",
        "NEWSLETTER_BATCH_SIZE": str(batch_size),
        "ESP": esp,
        "MAILGUN_API_KEY": "test-key",
        "MAILGUN_SENDER_DOMAIN": "mg.example.org",
        "MAILGUN_API_URL": f"{url}/v3",
        "POSTMARK_SERVER_TOKEN": "test-token",
        "POSTMARK_API_URL": f"{url}/",
    }
    return env


@contextlib.contextmanager
def fake_esp() -> Iterator[str]:
    process = subprocess.Popen(
        [PYTHON, "-m", "tests.fake_esp", "--port", str(ESP_PORT), "--no-bodies"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("FAKE_ESP_URL="):
        process.kill()
        raise RuntimeError(f"the fake ESP did not start: {line!r}")
    try:
        yield line.split("=", 1)[1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def esp_call(url: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(
        url + path, method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else {}


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return result.stdout


def reset_database(env: dict[str, str]) -> None:
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DATABASE], check=True
    )
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DATABASE], check=True)
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo")


SEED_SQL = """
DELETE FROM newsletter_delivery;
DELETE FROM newsletter_subscriber_topics WHERE subscriber_id IN
    (SELECT id FROM newsletter_subscriber WHERE email LIKE 'bench%%');
DELETE FROM newsletter_subscriber WHERE email LIKE 'bench%%';
INSERT INTO newsletter_subscriber
    (email, first_name, status, secret, created_at, updated_at, confirmed_at, language,
     source)
SELECT 'bench' || g || '@example.com', 'Reader' || g, 'active', md5(g::text),
       now(), now(), now(), 'en', 'bench'
FROM generate_series(1, %(n)s) AS g;
INSERT INTO newsletter_subscriber_topics (subscriber_id, topic_id)
SELECT s.id, t.id FROM newsletter_subscriber s, newsletter_topic t
WHERE s.email LIKE 'bench%%' AND t.slug = 'advances';
UPDATE newsletter_subscriber SET status = 'unsubscribed' WHERE email NOT LIKE 'bench%%';
VACUUM ANALYZE;
"""

ISSUE_SQL = """
INSERT INTO newsletter_issue
    (subject, slug, preheader, intro, status, rendered_html, rendered_text, error_count,
     last_error, created_at, updated_at, kind, language)
VALUES ('Getting a breast cancer second opinion', %(slug)s,
        'Why it is worth the time, and how to ask for one.',
        'This issue explains why a second opinion is worth the time.', 'draft', '', '', 0, '',
        now(), now(), 'issue', 'en')
RETURNING id;
"""


def seed(subscribers: int, slug: str) -> int:
    """Readers and a three-piece issue, straight into PostgreSQL (seconds, not minutes)."""
    import psycopg

    with psycopg.connect(f"{PG}/{DATABASE}", autocommit=True) as connection:
        for statement in SEED_SQL.split(";\n"):
            if statement.strip():
                connection.execute(statement.replace("%%", "%").replace("%(n)s", str(subscribers)))
        row = connection.execute(ISSUE_SQL.replace("%(slug)s", f"'{slug}'")).fetchone()
        assert row is not None
        issue_id = row[0]
        connection.execute(
            "INSERT INTO newsletter_issue_topics (issue_id, topic_id) "
            "SELECT %s, id FROM newsletter_topic WHERE slug = 'advances'",
            [issue_id],
        )
        connection.execute(
            "INSERT INTO newsletter_issuepiece (issue_id, piece_id, position) "
            "SELECT %s, id, row_number() OVER (ORDER BY home_position) FROM "
            "(SELECT id, home_position FROM newsletter_educationpiece "
            " ORDER BY home_position LIMIT 3) p",
            [issue_id],
        )
    return issue_id


def peak_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for task in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(task.name))
    return found


@contextlib.contextmanager
def workers(env: dict[str, str], concurrency: int) -> Iterator[subprocess.Popen]:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    log_file = (WORK / "worker.log").open("a")
    process = subprocess.Popen(
        [PYTHON, "-m", "celery", "-A", "project", "worker", "--queues", "bulk,transactional",
         "--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat", "--prefetch-multiplier", "1"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    time.sleep(4)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


RUN_SEND = """
import json, sys, time
import django
django.setup()
from django.utils import timezone
from newsletter import sending
from newsletter.models import Delivery, Issue
from django.db.models import Max, Count
issue_id = int(sys.argv[1])
started = timezone.now()
queued = sending.start_issue(issue_id=issue_id)
while Issue.objects.get(pk=issue_id).status == "sending":
    time.sleep(0.2)
rows = Delivery.objects.filter(issue_id=issue_id)
last = rows.aggregate(last=Max("sent_at"))["last"]
counts = dict(rows.values_list("status").annotate(n=Count("pk")).order_by())
print(json.dumps({"queued": queued, "seconds": (last - started).total_seconds(),
                  "counts": counts, "status": Issue.objects.get(pk=issue_id).status}))
"""

QUERIES_PER_BATCH = """
import json, sys
import django
django.setup()
from django.db import connection
from django.test.utils import CaptureQueriesContext
from newsletter import sending
issue_id = int(sys.argv[1])
sending.start_issue(issue_id=issue_id)  # its lane messages wait in Redis, unconsumed
with CaptureQueriesContext(connection) as captured:
    claimed = sending.send_batch(issue_id=issue_id)
print(json.dumps({"claimed": claimed, "queries": len(captured.captured_queries)}))
"""


def run_scenario(
    name: str, *, esp: str, subscribers: int, batch_size: int, concurrency: int
) -> dict:
    env = base_env(esp, batch_size)
    slug = f"bench-{name}-{int(time.time())}"
    log(f"{name}: seeding {subscribers:,} readers")
    issue_id = seed(subscribers, slug)
    esp_call(f"http://127.0.0.1:{ESP_PORT}", "/_fake/reset", "POST")
    with workers(env, concurrency) as worker:
        log(f"{name}: sending")
        result = subprocess.run(
            [PYTHON, "-c", RUN_SEND, str(issue_id)], cwd=ROOT, env=env, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        sent = json.loads(result.stdout.strip().splitlines()[-1])
        pool = children(worker.pid)
        rss = {
            "main": round(peak_rss_mb(worker.pid), 1),
            **{f"pool-{n}": round(peak_rss_mb(pid), 1) for n, pid in enumerate(pool)},
        }
        worker_cpu = sum(cpu_seconds(pid) for pid in [worker.pid, *pool])
    stats = esp_call(f"http://127.0.0.1:{ESP_PORT}", "/_fake/stats")
    outcome = {
        "scenario": name,
        "esp": esp,
        "subscribers": subscribers,
        "batch_size": batch_size,
        "worker_processes": concurrency,
        "seconds": round(sent["seconds"], 2),
        "recipients_per_second": round(subscribers / sent["seconds"]),
        "esp_calls": stats["calls"],
        "esp_accepted": stats["accepted"],
        "esp_unique_recipients": stats["unique_recipients"],
        "esp_duplicates": stats["duplicates"],
        "deliveries": sent["counts"],
        "worker_peak_rss_mb": rss,
        # CPU the workers spent, whatever else the machine was doing: steadier than
        # wall-clock time on a shared machine.
        "worker_cpu_seconds": round(worker_cpu, 2),
        "worker_cpu_ms_per_1000": round(worker_cpu / subscribers * 1_000_000, 1),
    }
    print(json.dumps(outcome), flush=True)
    return outcome


def queries_per_batch(batch_size: int) -> dict:
    env = base_env("mailgun", batch_size)
    issue_id = seed(batch_size * 2, f"bench-queries-{int(time.time())}")
    result = subprocess.run(
        [PYTHON, "-c", QUERIES_PER_BATCH, str(issue_id)], cwd=ROOT, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps({"scenario": "queries-per-batch", **outcome}), flush=True)
    return outcome


def baseline(subscribers: int) -> dict | None:
    script = ROOT / "benchmarks" / "django_newsletter" / "bench.sh"
    if not script.exists():
        log("django-newsletter baseline not found; skipped")
        return None
    log(f"django-newsletter 1.2.1: {subscribers:,} readers")
    result = subprocess.run(
        ["bash", str(script)], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "DN_SUBSCRIBERS": str(subscribers), "REPO_ROOT": str(ROOT),
             "ESP_PYTHON": PYTHON},
    )  # fmt: skip
    line = [row for row in result.stdout.splitlines() if row.startswith("{")][-1]
    outcome = json.loads(line)
    print(json.dumps({"scenario": "django-newsletter", **outcome}), flush=True)
    return outcome


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError):
        found = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        if found:
            memory = f", {int(found.group(1)) / 1024 / 1024:.0f} GiB"
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}){memory}, {platform.platform()}, Python {python}"


def write_results(results: dict) -> None:
    batch = results["batch"]
    lines = [
        "# Dispatch benchmark results",
        "",
        f"Run on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine()}.",
        "Reproduce with `make bench` (PostgreSQL and Redis on 127.0.0.1); everything below",
        "comes from one run, so the ratios compare like with like on a shared, noisy machine.",
        "",
        "Advances: real Celery workers on Redis, PostgreSQL, the real Anymail backends, and the",
        "fake ESP (`tests/fake_esp.py`, its own process, bodies not kept). The clock runs from the",
        "send action (`sending.start_issue`, which snapshots the audience) to the last Delivery",
        "recorded sent. An issue of three education pieces from the seed content.",
        "",
        "| scenario | readers | batch | worker processes | seconds | recipients/s | ESP calls "
        "| accepted | duplicates | worker CPU ms per 1,000 | worker peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for outcome in results["scenarios"]:
        rss = ", ".join(f"{k} {v}" for k, v in outcome["worker_peak_rss_mb"].items())
        lines.append(
            f"| {outcome['scenario']} ({outcome['esp']}) | {outcome['subscribers']:,} | "
            f"{outcome['batch_size']} | {outcome['worker_processes']} | {outcome['seconds']} | "
            f"{outcome['recipients_per_second']:,} | {outcome['esp_calls']:,} | "
            f"{outcome['esp_accepted']:,} | {outcome['esp_duplicates']} | "
            f"{outcome['worker_cpu_ms_per_1000']:,} | {rss} |"
        )
    queries = results.get("queries")
    if queries:
        lines += [
            "",
            f"Queries per batch (one batch of {queries['claimed']} readers, Mailgun path, "
            f"captured in-process): **{queries['queries']}**.",
        ]
    dn = results.get("baseline")
    if dn:
        ratio = batch["recipients_per_second"] / dn["recipients_per_second"]
        lines += [
            "",
            "## Against django-newsletter 1.2.1",
            "",
            f"django-newsletter 1.2.1 (Django {dn.get('django')}, "
            f"Anymail {dn.get('anymail')}), its own venv, sending the same three pieces to "
            f"{dn['subscribers']:,} subscribers through Anymail's Mailgun backend to the same fake "
            f"ESP: **{dn['recipients_per_second']:,.0f} recipients/s** ({dn['seconds']:.1f} s, "
            f"{dn.get('esp_calls', '?')} ESP calls, peak RSS {dn.get('peak_rss_mb', '?')} MB).",
            "",
            f"Advances' batch path is **{ratio:.0f} times** faster "
            f"({batch['recipients_per_second']:,} / {dn['recipients_per_second']:,.0f}).",
        ]
    million = results.get("million")
    if million:
        small = max(batch["worker_peak_rss_mb"].values())
        large = max(million["worker_peak_rss_mb"].values())
        lines += [
            "",
            "## Memory as the list grows",
            "",
            f"Largest worker process peak RSS: {small} MB at {batch['subscribers']:,} readers, "
            f"{large} MB at {million['subscribers']:,} readers.",
        ]
    lines += ["", "Raw JSON lines of this run:", "", "```"]
    lines += [json.dumps(item) for item in results["raw"]]
    lines += ["```", ""]
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--postmark-subscribers", type=int, default=10_000)
    parser.add_argument("--million", type=int, default=1_000_000)
    parser.add_argument("--baseline-subscribers", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; keep RESULTS.md")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict = {"scenarios": [], "raw": []}
    with fake_esp():
        reset_database(base_env("mailgun", 1000))
        batch = run_scenario("batch", esp="mailgun", subscribers=args.subscribers,
                             batch_size=1000, concurrency=args.concurrency)  # fmt: skip
        results["batch"] = batch
        results["scenarios"].append(batch)
        results["queries"] = queries_per_batch(1000)
        postmark = run_scenario("per-message", esp="postmark",
                                subscribers=args.postmark_subscribers, batch_size=100,
                                concurrency=args.concurrency)  # fmt: skip
        results["scenarios"].append(postmark)
        if not args.skip_million:
            million = run_scenario("memory", esp="mailgun", subscribers=args.million,
                                   batch_size=1000, concurrency=args.concurrency)  # fmt: skip
            results["million"] = million
            results["scenarios"].append(million)
    if not args.skip_baseline:
        results["baseline"] = baseline(args.baseline_subscribers)
    results["raw"] = [*results["scenarios"], results.get("queries"), results.get("baseline")]
    if not args.no_write:
        write_results(results)
        log("wrote benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
