"""What the latency benchmark and the failure drill share: the fake ESP in its own
process, a throwaway PostgreSQL database seeded in seconds, workers started with the
operators' own `make worker` command line, and a section of benchmarks/RESULTS.md.

Each script owns its section of RESULTS.md between `<!-- section:NAME -->` and
`<!-- /section:NAME -->` and leaves the rest of the file as it is.
"""

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
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PYTHON = sys.executable


def log(tag: str, message: str) -> None:
    now = time.strftime("%H:%M:%S", time.gmtime())
    print(f"[{tag} {now}] {message}", file=sys.stderr, flush=True)


def base_env(*, database: str, broker: str, redis_url: str, esp_url: str) -> dict[str, str]:
    """The environment of every process of a run: workers, beat, commands, the driver."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "SITE_URL": "https://advances.example.org",
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker,
        "LOG_LEVEL": "WARNING",
        "NEWSLETTER_REQUIRE_APPROVAL": "false",
        "NEWSLETTER_SIGNUP_RATE_IP": "100000/h",
        "ESP": "mailgun",
        "MAILGUN_API_KEY": "test-key",
        "MAILGUN_SENDER_DOMAIN": "mg.example.org",
        "MAILGUN_API_URL": f"{esp_url}/v3",
    }


@contextlib.contextmanager
def fake_esp() -> Iterator[str]:
    """The fake ESP in its own process on a free port; yields its URL."""
    process = subprocess.Popen(
        [PYTHON, "-m", "tests.fake_esp", "--port", "0", "--no-bodies"],
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


def esp_get(url: str, path: str) -> object:
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.loads(response.read() or b"null")


def esp_post(url: str, path: str, payload: dict | None = None) -> object:
    data = json.dumps(payload or {}).encode()
    request = urllib.request.Request(url + path, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def accepted_for(url: str, address: str) -> list[dict]:
    found = esp_get(url, "/_fake/accepted/" + urllib.parse.quote(address))
    assert isinstance(found, list)
    return found


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return result.stdout


def reset_database(env: dict[str, str], name: str) -> None:
    """Drop and create the run's own database, then migrate and seed the demo content."""
    pg = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["dropdb", *pg, "--if-exists", "--force", name], check=True)
    subprocess.run(["createdb", *pg, name], check=True)
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo")


SEED_SQL = """
DELETE FROM newsletter_delivery;
DELETE FROM newsletter_subscriber_topics WHERE subscriber_id IN
    (SELECT id FROM newsletter_subscriber WHERE email LIKE 'bench%');
DELETE FROM newsletter_subscriber WHERE email LIKE 'bench%';
INSERT INTO newsletter_subscriber
    (email, first_name, status, secret, language, source, created_at, updated_at,
     confirmed_at)
SELECT 'bench' || g || '@example.com', 'Reader' || g, 'active', md5(g::text), 'en', '',
       now(), now(), now()
FROM generate_series(1, {n}) AS g;
INSERT INTO newsletter_subscriber_topics (subscriber_id, topic_id)
SELECT s.id, t.id FROM newsletter_subscriber s, newsletter_topic t
WHERE s.email LIKE 'bench%' AND t.slug = 'advances';
UPDATE newsletter_subscriber SET status = 'unsubscribed' WHERE email NOT LIKE 'bench%';
VACUUM ANALYZE;
"""


def seed_readers(database: str, readers: int) -> None:
    """This many active readers of the main list, straight into PostgreSQL."""
    import psycopg

    with psycopg.connect(f"{PG}/{database}", autocommit=True) as connection:
        for statement in SEED_SQL.format(n=readers).split(";\n"):
            if statement.strip():
                connection.execute(statement)


def new_issue(env: dict[str, str], slug: str) -> int:
    """A draft issue of three seeded education pieces to the main list; returns its id."""
    code = (
        "import django; django.setup()\n"
        "from newsletter.models import EducationPiece, Issue, IssuePiece, Topic\n"
        f"issue = Issue.objects.create(subject='Getting a second opinion', slug={slug!r},"
        " preheader='Why it is worth the time.', intro='Why a second opinion matters.')\n"
        "issue.topics.set(Topic.objects.filter(slug='advances'))\n"
        "for n, piece in enumerate(EducationPiece.objects.filter(language='en')[:3], 1):\n"
        "    IssuePiece.objects.create(issue=issue, piece=piece, position=n)\n"
        "print(issue.pk)\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip().splitlines()[-1])


class Worker:
    """`make worker ARGS...` in its own process group, as an operator starts it."""

    def __init__(self, env: dict[str, str], args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self._offset = log_path.stat().st_size
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "worker", *args], cwd=ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, nodes: int, timeout: float = 90) -> None:
        """Until `nodes` Celery nodes of this command said they are ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")[self._offset :]
            if text.count(" ready.") >= nodes:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"`make worker {' '.join(self.args)}` did not start: {self.log_path}")

    def pids(self) -> list[int]:
        """Every process of its group: make, the supervisor, Celery and its pool."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.process.pid:  # process group id
                    found.append(int(stat.parent.name))
        return found

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a machine that lost power."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Pool processes outlive make if the supervisor was killed first.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


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


def stamp() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"


def write_section(name: str, body: str) -> None:
    """Replace this script's own section of RESULTS.md (or append it), nothing else."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of them at or
    below it (p99 of 20 values is the largest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]
