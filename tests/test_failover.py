"""Riding out failures with real workers, real brokers and a real database: a worker
node killed mid-send over RabbitMQ (a small `make drill`), and the workers' database
connections cut mid-send on PostgreSQL."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from newsletter.models import Delivery, Issue
from project.celery import app as celery_app
from tests.conftest import BASE_DIR, MakeWorker, wait_until, worker_env
from tests.factories import IssueFactory, SubscriberFactory, approve

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TEST_AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/adv_a")


def mailgun(fake_esp) -> dict[str, str]:
    return {
        "ESP": "mailgun",
        "MAILGUN_API_KEY": "test-key",
        "MAILGUN_SENDER_DOMAIN": "mg.example.org",
        "MAILGUN_API_URL": fake_esp.mailgun_api_url,
        "ANYMAIL_REQUESTS_TIMEOUT": "10",
    }


def amqp_broker() -> str:
    """The test vhost on RabbitMQ, emptied; fails under CI if RabbitMQ is not there."""
    from amqp.exceptions import NotFound
    from kombu import Connection
    from kombu.exceptions import OperationalError as BrokerUnavailable

    try:
        with Connection(TEST_AMQP_URL, connect_timeout=3) as amqp:
            amqp.ensure_connection(max_retries=1)
            channel = amqp.channel()
            for queue in ("transactional", "bulk"):
                try:
                    channel.queue_purge(queue)  # type: ignore[attr-defined]
                except NotFound:  # not declared yet: nothing to purge
                    channel = amqp.channel()
    except (OSError, BrokerUnavailable) as error:
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ at {TEST_AMQP_URL} is not answering ({error})")
        pytest.skip(f"RabbitMQ at {TEST_AMQP_URL} is not answering; CI runs this test")
    return TEST_AMQP_URL


def send_issue_command(slug: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`manage.py send_issue SLUG --wait`, as a publisher runs it from a shell."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "send_issue", slug, "--wait"],
        cwd=BASE_DIR, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def beat(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    """The periodic task's beat (every 15 s), which takes back a dead worker's rows."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "celerybeat-schedule")],
        cwd=BASE_DIR, env=env, stdout=(tmp_path / "beat.log").open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def in_flight() -> dict[int, str]:
    """Rows at the ESP right now, with their claim."""
    return dict(Delivery.objects.filter(status=Delivery.Status.SENDING).values_list("pk", "claim"))


def test_a_node_killed_mid_send_over_rabbitmq_loses_nobody_and_duplicates_only_its_calls(
    fake_esp, main_topic, tmp_path
):
    broker = amqp_broker()
    readers = SubscriberFactory.create_batch(400, topics=[main_topic])
    issue = approve(IssueFactory(subject="Second opinions"))
    celery_app.conf.task_always_eager = False
    fake_esp.delay = 0.5
    env = worker_env(
        broker, tmp_path, **mailgun(fake_esp),
        NEWSLETTER_BATCH_SIZE="20", NEWSLETTER_LEASE_SECONDS="4", NEWSLETTER_MAX_RATE="200",
    )  # fmt: skip
    nodes = [
        MakeWorker(
            ["QUEUES=bulk,transactional", f"NODE=node{n}", "CONCURRENCY=1"],
            env,
            tmp_path / f"node{n}.log",
        )
        for n in (1, 2, 3)
    ]
    beat_process = beat(env, tmp_path)
    command = None
    try:
        for node in nodes:
            node.start()
        command = send_issue_command(issue.slug, env, tmp_path / "send_issue.log")
        assert wait_until(lambda: fake_esp.accepted_calls >= 4, timeout=60), nodes[0].log()
        # Kill while batches are out, the way a machine dies: no warning, no cleanup.
        wait_until(lambda: len(set(in_flight().values())) >= 3, timeout=10, interval=0.02)
        nodes[0].kill()
        at_kill = in_flight()
        # Rows the living nodes had out are recorded within a call or two; what is
        # still out under the same claim a few seconds later was the dead node's.
        time.sleep(3)
        still = in_flight()
        dead_nodes_rows = {pk for pk, claim in at_kill.items() if still.get(pk) == claim}

        assert command.wait(timeout=150) == 0, (tmp_path / "send_issue.log").read_text()
    finally:
        if command and command.poll() is None:
            command.kill()
        beat_process.terminate()
        beat_process.wait(timeout=20)
        for node in nodes:
            node.stop()

    received = Counter(fake_esp.recipients())
    assert set(received) == {r.email for r in readers}
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= len(dead_nodes_rows)
    flagged = set(
        Delivery.objects.filter(maybe_duplicate=True).values_list("subscriber__email", flat=True)
    )
    assert {email for email, n in received.items() if n > 1} <= flagged
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT
    assert "The issue is sent." in (tmp_path / "send_issue.log").read_text()


# --- The database goes away -------------------------------------------------------------


class TcpProxy:
    """A TCP relay between the workers and PostgreSQL that can be cut (every connection
    dropped, new ones refused) and restored on the same port: a database restart or
    failover, as the workers see it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def database_proxy() -> Iterator[TcpProxy]:
    settings = connection.settings_dict
    proxy = TcpProxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)))
    proxy.start()
    yield proxy
    proxy.cut()


@pytest.mark.postgres
def test_cutting_the_database_mid_send_duplicates_nobody_and_send_issue_rides_it_out(
    start_worker, fake_esp, main_topic, tmp_path, database_proxy
):
    readers = SubscriberFactory.create_batch(400, topics=[main_topic])
    issue = approve(IssueFactory(subject="Second opinions"))
    fake_esp.delay = 0.6
    test_database = connection.settings_dict
    through_proxy = (
        f"postgres://{test_database['USER'] or 'postgres'}@127.0.0.1:{database_proxy.port}/"
        f"{test_database['NAME']}"
    )
    env = {**mailgun(fake_esp), "NEWSLETTER_BATCH_SIZE": "20", "DATABASE_URL": through_proxy}
    worker = start_worker(**env)
    command_env = {**worker.env}
    command = send_issue_command(issue.slug, command_env, tmp_path / "send_issue.log")
    try:
        assert wait_until(lambda: fake_esp.accepted_calls >= 3, timeout=60), worker.log()
        # Cut while a call is at the ESP: its answer comes back to a worker with no database.
        wait_until(lambda: fake_esp.calls > fake_esp.accepted_calls, timeout=10, interval=0.01)
        database_proxy.cut()
        time.sleep(10)
        database_proxy.start()
        assert command.wait(timeout=150) == 0, (tmp_path / "send_issue.log").read_text()
    finally:
        if command.poll() is None:
            command.kill()

    output = (tmp_path / "send_issue.log").read_text()
    assert "database unavailable, retrying" in output
    assert "The issue is sent." in output
    received = Counter(fake_esp.recipients())
    assert set(received) == {r.email for r in readers}
    assert max(received.values()) == 1, worker.log()
    assert "Database unavailable; retrying recording" in worker.log()
    assert not Delivery.objects.filter(maybe_duplicate=True).exists()
