import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.db import connection

from newsletter.models import Topic
from project.celery import app as celery_app
from tests.factories import SubscriberFactory
from tests.fake_esp import FakeESP

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Rate-limit counters start at zero, and tasks run inline unless a test asks
    for a real worker."""
    cache.clear()
    eager = celery_app.conf.task_always_eager
    if not request.node.get_closest_marker("worker"):
        celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


@pytest.fixture
def main_topic(db: None) -> Topic:
    return Topic.objects.get(slug="advances")


@pytest.fixture
def topic(db: None) -> Topic:
    return Topic.objects.create(name="Breast cancer", slug="breast-cancer")


@pytest.fixture
def subscriber_factory(db: None) -> type[SubscriberFactory]:
    return SubscriberFactory


URL_RE = re.compile(r"https?://[^\s<>\"]+")


def links_in(message: mail.EmailMessage, fragment: str) -> list[str]:
    """The URLs in a message's text part that contain `fragment`."""
    return [url for url in URL_RE.findall(str(message.body)) if fragment in url]


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


# --- A real Celery worker on a real Redis broker -------------------------------------


# Without REDIS_URL, each checkout gets its own Redis database (8 to 15), so two test
# runs on one machine never take each other's tasks.
TEST_BROKER_URL = (
    os.environ.get("REDIS_URL")
    or f"redis://127.0.0.1:6379/{8 + zlib.crc32(str(BASE_DIR).encode()) % 8}"
)


def pytest_configure(config: pytest.Config) -> None:
    # Point the app at the test broker before anything creates its connection pool
    # (even an inline task does); tasks still run inline until a test asks for a worker.
    celery_app.conf.update(broker_url=TEST_BROKER_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # PostgreSQL-only tests are left out of a SQLite run rather than skipped, so a CI
    # run (which runs the suite on both) reports no skips; the PostgreSQL run has them.
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    kept = [item for item in items if not item.get_closest_marker("postgres")]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def redis_url_for_tests() -> str:
    try:
        redis.Redis.from_url(TEST_BROKER_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if os.environ.get("CI"):
            pytest.fail(
                f"Redis at {TEST_BROKER_URL} is not answering ({error}); CI must run worker tests"
            )
        pytest.skip(f"Redis at {TEST_BROKER_URL} is not answering; CI runs these tests")
    return TEST_BROKER_URL


def database_url_of_test_database() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{settings['HOST']}:{settings['PORT'] or 5432}/{settings['NAME']}"


class WorkerProcess:
    def __init__(self, queues: str, env: dict[str, str], log_path: Path, concurrency: int) -> None:
        self.queues = queues
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> "WorkerProcess":
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "project", "worker",
                "--queues", self.queues, "--concurrency", str(self.concurrency),
                "--loglevel", "INFO", "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a test can kill it whole
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text(errors="replace")[offset:]:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"Celery worker did not start:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes on the real Redis broker, with the test database and
    extra environment (e.g. an ESP). Use with @pytest.mark.worker."""
    broker = redis_url_for_tests()
    redis.Redis.from_url(broker).delete("transactional", "bulk", "unacked", "unacked_index")
    celery_app.conf.task_always_eager = False
    workers: list[WorkerProcess] = []

    def start(
        queues: str = "transactional,bulk", concurrency: int = 2, **extra_env: str
    ) -> WorkerProcess:
        env = {
            **os.environ,
            "REDIS_URL": broker,
            "DATABASE_URL": database_url_of_test_database(),
            "EMAIL_FILE_PATH": str(tmp_path / "outbox"),
            "ESP": "",
            **extra_env,
        }
        worker = WorkerProcess(queues, env, tmp_path / "worker.log", concurrency)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def celery_worker_on_redis(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """A worker consuming only the transactional queue, its outbox in tmp_path/outbox."""
    return start_worker(queues="transactional")


@pytest.fixture
def fake_esp() -> Iterator[FakeESP]:
    with FakeESP() as esp:
        yield esp


def wait_until(condition: Callable[[], object], timeout: float = 60, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


# --- Workers started as operators start them: `make worker ...` ----------------------


class MakeWorker:
    """`make worker ARGS...` in its own process group: the very command line that the
    README and docker-compose give operators (no args: one process per queue)."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, nodes: int = 1, timeout: float = 90) -> "MakeWorker":
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "worker", *self.args], cwd=BASE_DIR, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.read_text(errors="replace")[offset:].count(" ready.") >= nodes:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"make worker {' '.join(self.args)} did not start:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL every process of it at once, as a machine that lost power."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # pool processes left behind
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_env(broker: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker (or command) process on the test database."""
    return {
        **os.environ,
        "REDIS_URL": redis_url_for_tests(),
        "CELERY_BROKER_URL": broker,
        "DATABASE_URL": database_url_of_test_database(),
        "EMAIL_FILE_PATH": str(tmp_path / "outbox"),
        "ESP": "",
        **extra,
    }
