"""The dispatch benchmark: Advances sending one issue to a large list, measured.

Runs on this machine's PostgreSQL and Redis with real Celery workers, the real Anymail
backends and the fake ESP (tests/fake_esp.py) in its own process; in the same run, the
no-database harness (benchmarks/batch_harness.py) building the same Mailgun batches, a py-spy
profile of a worker, the query plans of a batch at 0 and 900,000 sent, and
django-newsletter 1.2.1 sending the same content (benchmarks/django_newsletter/).
Prints a JSON line per scenario and writes its section of benchmarks/RESULTS.md.

    make bench                                   # the whole run (about 10 minutes)
    .venv/bin/python benchmarks/bench.py --quick # 20,000 readers, no 1M, no baseline

Services: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_DATABASE (a
database it drops and creates, default advances_bench), BENCH_REDIS_URL (a Redis
database it flushes, default redis://127.0.0.1:6379/9).
"""

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from harness import machine  # one description of the machine for every benchmark

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "dispatch"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DATABASE = os.environ.get("BENCH_DATABASE", "advances_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
PYTHON = sys.executable
# The topic each scenario sends to: every bench reader is in the first, the first
# 100,000 in the second, the first 10,000 in the third (seeded once, see seed_readers).
TOPICS = {"million": "advances", "hundred": "breast-cancer", "ten": "clinical-trials"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def base_env(esp: str, batch_size: int, esp_url: str = "http://127.0.0.1:8025") -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SITE_URL": "https://advances.example.org",
        "DATABASE_URL": f"{PG}/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "LOG_LEVEL": "WARNING",
        "NEWSLETTER_BATCH_SIZE": str(batch_size),
        "NEWSLETTER_REQUIRE_APPROVAL": "false",
        "ESP": esp,
        "MAILGUN_API_KEY": "test-key",
        "MAILGUN_SENDER_DOMAIN": "mg.example.org",
        "MAILGUN_API_URL": f"{esp_url}/v3",
        "POSTMARK_SERVER_TOKEN": "test-token",
        "POSTMARK_API_URL": f"{esp_url}/",
    }


@contextlib.contextmanager
def fake_esp() -> Iterator[tuple[str, int]]:
    process = subprocess.Popen(
        [PYTHON, "-m", "tests.fake_esp", "--port", str(free_port()), "--no-bodies"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("FAKE_ESP_URL="):
        process.kill()
        raise RuntimeError(f"the fake ESP did not start: {line!r}")
    try:
        yield line.split("=", 1)[1], process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def esp_call(url: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(
        url + path, method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    return json.loads(body) if body else {}


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return result.stdout


def sql(statement: str, params: list | None = None, *, fetch: bool = False):
    import psycopg

    with psycopg.connect(f"{PG}/{DATABASE}", autocommit=True) as connection:
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if fetch else None


def reset_database(env: dict[str, str]) -> None:
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DATABASE], check=True
    )
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DATABASE], check=True)
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo")


SEED_SQL = """
UPDATE newsletter_subscriber SET status = 'unsubscribed';
INSERT INTO newsletter_subscriber
    (email, first_name, status, secret, language, source, created_at, updated_at, confirmed_at)
SELECT 'bench' || g || '@example.com', 'Reader' || g, 'active', md5(g::text), 'en', 'bench',
       now(), now(), now()
FROM generate_series(1, {n}) AS g;
INSERT INTO newsletter_subscriber_topics (subscriber_id, topic_id)
SELECT s.id, t.id FROM newsletter_subscriber s, newsletter_topic t
WHERE s.source = 'bench' AND t.slug = '{million}';
INSERT INTO newsletter_subscriber_topics (subscriber_id, topic_id)
SELECT s.id, t.id FROM newsletter_subscriber s, newsletter_topic t
WHERE s.source = 'bench' AND t.slug = '{hundred}' AND s.id <= (
    SELECT min(id) + 99999 FROM newsletter_subscriber WHERE source = 'bench');
INSERT INTO newsletter_subscriber_topics (subscriber_id, topic_id)
SELECT s.id, t.id FROM newsletter_subscriber s, newsletter_topic t
WHERE s.source = 'bench' AND t.slug = '{ten}' AND s.id <= (
    SELECT min(id) + 9999 FROM newsletter_subscriber WHERE source = 'bench');
VACUUM ANALYZE
"""

ISSUE_SQL = """
INSERT INTO newsletter_issue
    (kind, subject, slug, preheader, intro, language, status, rendered_html, rendered_text,
     error_count, last_error, progress_counts, created_at, updated_at)
VALUES ('issue', 'Getting a breast cancer second opinion', %s,
        'Why it is worth the time, and how to ask for one.',
        'This issue explains why a second opinion is worth the time.', 'en', 'draft', '', '',
        0, '', '{}', now(), now())
RETURNING id
"""


def seed_readers(readers: int) -> None:
    """The bench readers, once for the whole run, straight into PostgreSQL."""
    log(f"seeding {readers:,} readers")
    for statement in SEED_SQL.format(n=readers, **TOPICS).split(";\n"):
        sql(statement)


def seed(subscribers: int, slug: str) -> int:
    """A fresh list of `subscribers` bench readers and a three-piece issue to all of them
    (for benchmarks/esps.py, which seeds once per ESP)."""
    sql("DELETE FROM newsletter_delivery")
    sql(
        "DELETE FROM newsletter_subscriber_topics WHERE subscriber_id IN "
        "(SELECT id FROM newsletter_subscriber WHERE source = 'bench')"
    )
    sql("DELETE FROM newsletter_subscriber WHERE source = 'bench'")
    seed_readers(subscribers)
    return new_issue(slug, TOPICS["million"])


def new_issue(name: str, topic: str) -> int:
    """A draft of three education pieces to one topic's readers."""
    rows = sql(ISSUE_SQL, [f"bench-{name}-{time.time_ns()}"], fetch=True)
    issue_id = rows[0][0]
    sql(
        "INSERT INTO newsletter_issue_topics (issue_id, topic_id) "
        "SELECT %s, id FROM newsletter_topic WHERE slug = %s",
        [issue_id, topic],
    )
    sql(
        "INSERT INTO newsletter_issuepiece (issue_id, piece_id, position) "
        "SELECT %s, id, row_number() OVER (ORDER BY home_position) FROM "
        "(SELECT id, home_position FROM newsletter_educationpiece "
        " ORDER BY home_position LIMIT 3) p",
        [issue_id],
    )
    return issue_id


# --- Processes -------------------------------------------------------------------------


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


# Started in its own process, as an operator's `send_issue` would be; samples the fake
# ESP's count every half second for the rate at each point of the send.
RUN_SEND = """
import json, sys, time, urllib.request
import django
django.setup()
from django.db.models import Count, Max
from django.utils import timezone
from newsletter import sending
from newsletter.models import Delivery, Issue
issue_id, esp_url = int(sys.argv[1]), (sys.argv[2:] or [""])[0]
samples = []
started = timezone.now()
clock = time.monotonic()
queued = sending.start_issue(issue_id=issue_id)
while Issue.objects.filter(pk=issue_id).values_list("status", flat=True)[0] == "sending":
    if esp_url:
        with urllib.request.urlopen(esp_url + "/_fake/count", timeout=30) as reply:
            accepted = json.loads(reply.read())["accepted"]
        samples.append((round(time.monotonic() - clock, 2), accepted))
    time.sleep(0.5)
rows = Delivery.objects.filter(issue_id=issue_id)
last = rows.aggregate(last=Max("sent_at"))["last"]
counts = dict(rows.values_list("status").annotate(n=Count("pk")).order_by())
print(json.dumps({"queued": queued, "seconds": (last - started).total_seconds(),
                  "counts": counts, "status": Issue.objects.get(pk=issue_id).status,
                  "samples": samples}))
"""


def rate_by_tenth(samples: list[list[float]], total: int) -> list[int]:
    """Recipients per second in each tenth of the send, from the ESP's running count."""
    crossings = [0.0]
    for tenth in range(1, 11):
        mark = total * tenth / 10
        crossed = next((t for t, n in samples if n >= mark), samples[-1][0] if samples else 0)
        crossings.append(crossed)
    return [round(total / 10 / (b - a)) if b > a else 0 for a, b in itertools.pairwise(crossings)]


def run_scenario(
    name: str, *, esp: str, esp_url: str, topic: str, readers: int, batch_size: int,
    concurrency: int, profile_seconds: float = 0,
) -> dict:  # fmt: skip
    env = base_env(esp, batch_size, esp_url)
    issue_id = new_issue(name, topic)
    esp_call(esp_url, "/_fake/reset", "POST")
    load_before = load()
    with workers(env, concurrency) as worker:
        log(f"{name}: sending to {readers:,} readers (load average {load_before[0]})")
        spy = None
        if profile_seconds:
            spy = subprocess.Popen(
                [str(Path(PYTHON).parent / "py-spy"), "record", "--pid", str(worker.pid),
                 "--subprocesses", "--format", "raw", "--rate", "200", "--nonblocking",
                 "--duration", str(int(profile_seconds)), "--output", str(WORK / "profile.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        result = subprocess.run(
            [PYTHON, "-c", RUN_SEND, str(issue_id), esp_url], cwd=ROOT, env=env,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        sent = json.loads(result.stdout.strip().splitlines()[-1])
        pool = children(worker.pid)
        rss = {
            "main": round(peak_rss_mb(worker.pid), 1),
            **{f"pool-{n}": round(peak_rss_mb(pid), 1) for n, pid in enumerate(pool)},
        }
        worker_cpu = sum(cpu_seconds(pid) for pid in [worker.pid, *pool])
    stats = esp_call(esp_url, "/_fake/stats")
    outcome = {
        "scenario": name,
        "esp": esp,
        "subscribers": readers,
        "batch_size": batch_size,
        "worker_processes": concurrency,
        "seconds": round(sent["seconds"], 2),
        "recipients_per_second": round(readers / sent["seconds"]),
        "rate_by_tenth": rate_by_tenth(sent["samples"], readers),
        "esp_calls": stats["calls"],
        "esp_accepted": stats["accepted"],
        "esp_unique_recipients": stats["unique_recipients"],
        "esp_duplicates": stats["duplicates"],
        "deliveries": sent["counts"],
        "worker_peak_rss_mb": rss,
        # CPU the workers spent, whatever else the machine was doing: steadier than
        # wall-clock time on a shared machine.
        "worker_cpu_seconds": round(worker_cpu, 2),
        "worker_cpu_ms_per_1000": round(worker_cpu / readers * 1_000_000, 1),
        "load_average": [load_before[0], load()[0]],
        "profiled": bool(profile_seconds),
    }
    if sent["counts"] != {"sent": readers} or stats["unique_recipients"] != readers:
        raise SystemExit(f"{name}: not every reader was sent exactly once: {outcome}")
    print(json.dumps(outcome), flush=True)
    return outcome


def ledger_stats() -> dict:
    """The ledger as PostgreSQL sees it after the sends (no VACUUM has run here unless
    autovacuum is on)."""
    rows = sql(
        "SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, "
        "pg_total_relation_size('newsletter_delivery'), pg_relation_size('newsletter_delivery'),"
        " autovacuum_count, last_autovacuum IS NOT NULL "
        "FROM pg_stat_user_tables WHERE relname = 'newsletter_delivery'",
        fetch=True,
    )
    live, dead, updated, hot, total, heap, autovacuums, vacuumed = rows[0]
    settings = {
        name: sql(f"SHOW {name}", fetch=True)[0][0]
        for name in ("autovacuum", "shared_buffers", "server_version")
    }
    options = sql(
        "SELECT reloptions FROM pg_class WHERE relname = 'newsletter_delivery'", fetch=True
    )[0][0]
    return {
        "scenario": "ledger",
        **settings,
        "table_options": options,
        "live_rows": live,
        "dead_rows": dead,
        "updates": updated,
        "hot_updates": hot,
        "heap_mb": round(heap / 2**20),
        "with_indexes_mb": round(total / 2**20),
        "autovacuum_runs": autovacuums,
        "vacuumed": vacuumed,
    }


# --- One batch's statements, planned at 0 and at 900,000 sent ----------------------------

PLANS = """
import json, sys
import django
django.setup()
from django.db import connection
from newsletter import sending
from newsletter.models import Delivery

issue_id, sent_before = int(sys.argv[1]), int(sys.argv[2])
LEDGER = Delivery._meta.db_table
plans = []

def explain(execute, sql, params, many, context):
    if LEDGER in sql and not many and sql.lstrip().split()[0] in {"SELECT", "UPDATE"}:
        raw = context["cursor"].cursor
        nested = context["connection"].in_atomic_block
        raw.execute("SAVEPOINT probe" if nested else "BEGIN")
        raw.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
        found = raw.fetchone()[0][0]
        raw.execute("ROLLBACK TO SAVEPOINT probe" if nested else "ROLLBACK")
        plan = found["Plan"]
        def walk(node):
            yield node
            for child in node.get("Plans", []):
                yield from walk(child)
        ledger = [n for n in walk(plan) if n.get("Relation Name") == LEDGER]
        plans.append({
            "statement": " ".join(sql.split())[:90],
            "ms": round(found["Execution Time"], 2),
            "blocks": plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0),
            "reads": sorted({n["Node Type"] + " " + n.get("Index Name", "") for n in ledger}),
            "removed_by_filter": sum(n.get("Rows Removed by Filter", 0) for n in ledger),
        })
    return execute(sql, params, many, context)

if sent_before:
    sending._claimed_up_to[issue_id] = sent_before  # a lane that has been sending all along
with connection.execute_wrapper(explain):
    for _ in range(2):  # the second batch is the steady state
        plans.clear()
        claimed = sending.send_batch(issue_id=issue_id)
print(json.dumps({"claimed": claimed, "plans": plans}))
"""


def batch_plans(esp_url: str, topic: str, readers: int) -> dict:
    """EXPLAIN ANALYZE of every ledger statement of one batch, with no row sent and with
    90% of a `readers`-row issue sent the way a send leaves it (dead row versions, no
    VACUUM in between)."""
    env = base_env("mailgun", 1000, esp_url)
    issue_id = new_issue("plans", topic)
    started = subprocess.run(
        [PYTHON, "-c",
         "import django, sys; django.setup(); from newsletter import sending; "
         "print(sending.start_issue(issue_id=int(sys.argv[1])))", str(issue_id)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    log(f"plans: {started.stdout.strip()} rows queued; EXPLAIN at 0 sent")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # nobody consumes its lanes
    at = {}
    run = [PYTHON, "-c", PLANS, str(issue_id)]
    out = subprocess.run([*run, "0"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    at["0"] = json.loads(out.stdout.strip().splitlines()[-1])
    mark = readers * 9 // 10
    log(f"plans: marking {mark:,} rows sent (one UPDATE), then EXPLAIN again")
    rows = sql(
        "UPDATE newsletter_delivery SET status = 'sent', sent_at = now(), claim = 'bench' "
        "WHERE id IN (SELECT id FROM newsletter_delivery WHERE issue_id = %s "
        "AND status = 'queued' ORDER BY id LIMIT %s) RETURNING id",
        [issue_id, mark],
        fetch=True,
    )
    last = max(row[0] for row in rows)
    out = subprocess.run(
        [*run, str(last)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    at[f"{mark}"] = json.loads(out.stdout.strip().splitlines()[-1])
    outcome = {"scenario": "plans", "readers": readers, "at": at}
    print(json.dumps(outcome), flush=True)
    return outcome


# --- The profile -------------------------------------------------------------------------


def top_functions(path: Path, count: int = 20) -> dict:
    """py-spy's raw (collapsed) stacks -> the functions with the most samples, by own
    time and by total time (each stack counted once per function in it)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        n = int(number)
        frames = [clean_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    return {
        "samples": samples,
        "own": [(f, round(100 * n / samples, 1)) for f, n in own.most_common(count)],
        "total": [(f, round(100 * n / samples, 1)) for f, n in total.most_common(count)],
    }


def clean_frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module/file.py)"
    match = re.match(r"(.*) \((.*?):?(\d*)\)$", frame.strip())
    if not match:
        return frame.strip()
    function, file = match.group(1), match.group(2)
    if function.startswith("process ") or function.startswith("<module>"):
        return ""
    short = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", file)
    short = short.replace(str(ROOT) + "/", "")
    return f"{function} ({short})"


# --- Other measures ---------------------------------------------------------------------


def harness(
    esp_url: str, issue_id: int, recipients: int, processes: int, *, stock: bool = False
) -> dict:
    rows = sql(
        "SELECT subject, rendered_html, rendered_text FROM newsletter_issue WHERE id = %s",
        [issue_id],
        fetch=True,
    )
    subject, html, text = rows[0]
    frozen = WORK / "issue.json"
    frozen.write_text(json.dumps({"id": issue_id, "subject": subject, "html": html, "text": text}))
    esp_call(esp_url, "/_fake/reset", "POST")
    log(f"harness: {recipients:,} recipients, {processes} processes, no database"
        + (", stock parts" if stock else ""))  # fmt: skip
    load_before = load()
    result = subprocess.run(
        [PYTHON, str(ROOT / "benchmarks" / "batch_harness.py"), "--esp-url", esp_url,
         "--issue", str(frozen), "--recipients", str(recipients),
         "--processes", str(processes), *(["--stock"] if stock else [])],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    outcome["esp_accepted"] = esp_call(esp_url, "/_fake/count")["accepted"]
    outcome["load_average"] = [load_before[0], load()[0]]
    print(json.dumps(outcome), flush=True)
    return outcome


QUERIES_PER_BATCH = """
import json, sys
import django
django.setup()
from django.db import connection
from django.test.utils import CaptureQueriesContext
from newsletter import sending
issue_id = int(sys.argv[1])
sending.start_issue(issue_id=issue_id)  # its lane messages wait in Redis, unconsumed
sending.send_batch(issue_id=issue_id)  # the first batch of a lane notes the claim time
with CaptureQueriesContext(connection) as captured:
    claimed = sending.send_batch(issue_id=issue_id)
print(json.dumps({"claimed": claimed, "queries": len(captured.captured_queries)}))
"""


def queries_per_batch(esp_url: str, topic: str) -> dict:
    env = base_env("mailgun", 1000, esp_url)
    issue_id = new_issue("queries", topic)
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
    outcome = {"scenario": "django-newsletter", **json.loads(line)}
    print(json.dumps(outcome), flush=True)
    return outcome


# --- RESULTS.md ----------------------------------------------------------------------------


def replace_section(document: str, name: str, body: str) -> str:
    """`document` with the text between <!-- section:NAME --> and <!-- /section:NAME -->
    replaced by `body` (added at the end when missing); every other section is kept."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    if "<!-- section:" not in document:
        # A results file from before sections: it was all this benchmark's.
        document = (
            "# Benchmark results\n\n"
            "Each section is written by one script; rerunning a script replaces its own.\n"
        )
    return document.rstrip() + "\n\n" + block + "\n"


def write_results(results: dict) -> None:
    RESULTS.write_text(
        replace_section(RESULTS.read_text() if RESULTS.exists() else "", SECTION, report(results))
    )


def report(results: dict) -> str:
    scenarios = results["scenarios"]
    batch = results["batch"]
    million = results.get("million")
    lines = [
        "## Dispatch",
        "",
        f"Run on {results['started']} UTC, {machine()}; `{results['command']}`, "
        f"{results['minutes']:.1f} minutes.",
        f"Load average (1 min) at the start {results['load_start'][0]}, at the end "
        f"{results['load_end'][0]}; on 2 cores anything above 2 means other work had the "
        "CPUs. Every figure below comes from this one run, so the ratios compare like with "
        "like.",
        "",
        "Advances: real Celery workers on Redis, PostgreSQL, the real Anymail backends, and the "
        "fake ESP (`tests/fake_esp.py`, its own process, bodies not kept). The clock runs from "
        "the send action (`sending.start_issue`, which snapshots the audience) to the last "
        "Delivery recorded sent. An issue of three education pieces from the seed content.",
        "",
        "| scenario | readers | batch | worker processes | seconds | recipients/s | rate in "
        "each tenth of the send | ESP calls | duplicates | worker CPU ms per 1,000 | "
        "worker peak RSS (MB) | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for o in scenarios:
        rss = ", ".join(f"{k} {v}" for k, v in o["worker_peak_rss_mb"].items())
        tenths = " ".join(f"{r / 1000:.1f}k" for r in o["rate_by_tenth"])
        lines.append(
            f"| {o['scenario']} ({o['esp']}) | {o['subscribers']:,} | {o['batch_size']} | "
            f"{o['worker_processes']} | {o['seconds']} | **{o['recipients_per_second']:,}** | "
            f"{tenths} | {o['esp_calls']:,} | {o['esp_duplicates']} | "
            f"{o['worker_cpu_ms_per_1000']:,} | {rss} | "
            f"{o['load_average'][0]} -> {o['load_average'][1]} |"
        )
    h = results.get("harness")
    lines += ["", "### Against the targets", ""]
    target = "reached" if batch["recipients_per_second"] >= 10_000 else "not reached"
    lines.append(
        f"- 100,000 readers: **{batch['recipients_per_second']:,}/s** (target 10,000/s: "
        f"{target} in this run)."
    )
    if million:
        share = million["recipients_per_second"] / batch["recipients_per_second"]
        small = max(batch["worker_peak_rss_mb"].values())
        large = max(million["worker_peak_rss_mb"].values())
        tenths = million["rate_by_tenth"]
        lines.append(
            f"- 1,000,000 readers: **{million['recipients_per_second']:,}/s**, "
            f"**{share:.0%}** of the 100,000 rate (target 90%); its last tenth ran at "
            f"{tenths[-1]:,}/s against {tenths[0]:,}/s in its first."
        )
        lines.append(
            f"- Worker memory: largest worker process peaked at {small} MB at 100,000 and "
            f"{large} MB at 1,000,000 readers."
        )
    if h:
        share = batch["recipients_per_second"] / h["recipients_per_second"]
        lines.append(
            f"- No-database harness (`benchmarks/batch_harness.py`, {h['processes']} processes, "
            "the "
            f"same Mailgun adapter and Anymail backend, the same fake ESP): "
            f"**{h['recipients_per_second']:,}/s** ({h['cpu_ms_per_1000']} ms CPU per 1,000); "
            f"the end-to-end 100,000 send is **{share:.0%}** of it (target 80%)."
        )
    stock = results.get("harness_stock")
    if h and stock:
        lines.append(
            f"- CPU of the sending path per 1,000 recipients (the harness, same run): "
            f"**{stock['cpu_ms_per_1000']} ms** with Django's signer and Anymail's own Mailgun "
            f"backend, **{h['cpu_ms_per_1000']} ms** with the per-purpose HMAC signer and the "
            f"batch backend ({stock['recipients_per_second']:,}/s -> "
            f"{h['recipients_per_second']:,}/s)."
        )
    dn = results.get("baseline")
    if dn:
        ratio = batch["recipients_per_second"] / dn["recipients_per_second"]
        lines.append(
            f"- django-newsletter 1.2.1 (Django {dn.get('django')}, Anymail {dn.get('anymail')}, "
            f"its own venv, the same three pieces, Anymail's Mailgun backend, the same fake ESP, "
            f"{dn['subscribers']:,} subscribers): **{dn['recipients_per_second']:,.0f}/s**; "
            f"Advances' batch path is **{ratio:.0f} times** faster in this run."
        )
    queries = results.get("queries")
    if queries:
        lines.append(
            f"- Queries per batch of {queries['claimed']} readers (Mailgun path, captured "
            f"in-process): **{queries['queries']}**."
        )
    ledger = results.get("ledger")
    if ledger:
        lines += [
            "",
            "### The ledger after these sends",
            "",
            f"PostgreSQL {ledger['server_version']}, `autovacuum = {ledger['autovacuum']}`, "
            f"`shared_buffers = {ledger['shared_buffers']}`; table options "
            f"`{', '.join(ledger['table_options'] or [])}`. "
            f"{ledger['live_rows']:,} live rows, {ledger['dead_rows']:,} dead row versions, "
            f"{ledger['updates']:,} updates of which {ledger['hot_updates']:,} HOT; heap "
            f"{ledger['heap_mb']} MB, {ledger['with_indexes_mb']} MB with its indexes; "
            f"autovacuum ran {ledger['autovacuum_runs']} times on it.",
        ]
    plans = results.get("plans")
    if plans:
        lines += [
            "",
            f"### One batch's statements at 0 and at {int(list(plans['at'])[-1]):,} sent",
            "",
            f"EXPLAIN (ANALYZE, BUFFERS) of each statement on the ledger in one batch of a "
            f"{plans['readers']:,}-reader issue (the second batch of a lane; the rows marked "
            "sent by one UPDATE, their old versions left dead, no VACUUM in between).",
            "",
            "| statement | reads | ms at 0 | ms late | buffers at 0 | buffers late | "
            "rows removed by filter (late) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        early, late = (plans["at"][k]["plans"] for k in plans["at"])
        for a, b in zip(early, late, strict=False):
            lines.append(
                f"| `{b['statement']}` | {', '.join(b['reads'])} | {a['ms']} | {b['ms']} | "
                f"{a['blocks']} | {b['blocks']} | {b['removed_by_filter']} |"
            )
    profile = results.get("profile")
    if profile and profile["samples"]:
        lines += [
            "",
            "### Where a worker's CPU goes",
            "",
            f"py-spy (200 Hz, both pool processes, {profile['samples']:,} samples) during a "
            "separate 100,000-reader send (not the timed one). Own time: samples whose "
            "innermost frame is the function; total: samples with the function anywhere on "
            "the stack.",
            "",
            "| # | function (own time) | own % | function (total time) | total % |",
            "| ---: | --- | ---: | --- | ---: |",
        ]
        for n, ((f1, p1), (f2, p2)) in enumerate(
            zip(profile["own"], profile["total"], strict=False), start=1
        ):
            lines.append(f"| {n} | `{f1}` | {p1} | `{f2}` | {p2} |")
    lines += ["", "Raw JSON lines of this run:", "", "```"]
    lines += [json.dumps(item) for item in results["raw"] if item]
    lines += ["```"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--postmark-subscribers", type=int, default=10_000)
    parser.add_argument("--million", type=int, default=1_000_000)
    parser.add_argument("--baseline-subscribers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-per-message", action="store_true")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--skip-plans", action="store_true")
    parser.add_argument("--quick", action="store_true", help="20,000 readers, nothing else")
    parser.add_argument("--no-write", action="store_true", help="print only; keep RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.subscribers = 20_000
        args.skip_million = args.skip_baseline = args.skip_per_message = True
        args.skip_profile = args.skip_plans = True
    clock = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "scenarios": [],
        "started": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}",
        "command": " ".join(["benchmarks/bench.py", *sys.argv[1:]]),
        "load_start": load(),
    }
    readers = args.subscribers if args.skip_million else max(args.million, args.subscribers)
    with fake_esp() as (esp_url, _):
        reset_database(base_env("mailgun", 1000, esp_url))
        seed_readers(readers)
        batch = run_scenario("batch", esp="mailgun", esp_url=esp_url, topic=TOPICS["hundred"],
                             readers=min(args.subscribers, 100_000), batch_size=1000,
                             concurrency=args.concurrency)  # fmt: skip
        results["batch"] = batch
        results["scenarios"].append(batch)
        last_issue = sql("SELECT max(id) FROM newsletter_issue", fetch=True)[0][0]
        results["harness"] = harness(esp_url, last_issue, batch["subscribers"], args.concurrency)
        results["harness_stock"] = harness(
            esp_url, last_issue, batch["subscribers"], args.concurrency, stock=True
        )
        results["queries"] = queries_per_batch(esp_url, TOPICS["ten"])
        if not args.skip_million:
            million = run_scenario("million", esp="mailgun", esp_url=esp_url,
                                   topic=TOPICS["million"], readers=args.million,
                                   batch_size=1000, concurrency=args.concurrency)  # fmt: skip
            results["million"] = million
            results["scenarios"].append(million)
            results["ledger"] = ledger_stats()
        if not args.skip_profile:
            profiled = run_scenario("profiled", esp="mailgun", esp_url=esp_url,
                                    topic=TOPICS["hundred"], readers=batch["subscribers"],
                                    batch_size=1000, concurrency=args.concurrency,
                                    profile_seconds=600)  # fmt: skip
            results["profiled"] = profiled
            results["profile"] = top_functions(WORK / "profile.txt")
        if not args.skip_per_message:
            postmark = run_scenario("per-message", esp="postmark", esp_url=esp_url,
                                    topic=TOPICS["ten"], readers=args.postmark_subscribers,
                                    batch_size=100, concurrency=args.concurrency)  # fmt: skip
            results["scenarios"].append(postmark)
        if not args.skip_plans and not args.skip_million:
            results["plans"] = batch_plans(esp_url, TOPICS["million"], args.million)
    if not args.skip_baseline:
        results["baseline"] = baseline(args.baseline_subscribers)
    results["load_end"] = load()
    results["minutes"] = (time.monotonic() - clock) / 60
    results["raw"] = [
        *results["scenarios"],
        results.get("profiled"),
        results.get("harness"),
        results.get("harness_stock"),
        results.get("queries"),
        results.get("ledger"),
        results.get("plans"),
        results.get("baseline"),
        {"load_start": results["load_start"], "load_end": results["load_end"]},
    ]
    (WORK / "last-run.json").write_text(json.dumps(results, indent=1, default=str))
    if not args.no_write:
        write_results(results)
        log("wrote benchmarks/RESULTS.md")
    log(f"done in {results['minutes']:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
