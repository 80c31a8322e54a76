"""The ledger's query plans on PostgreSQL: what sending costs does not grow with the send.

Every statement that touches the Delivery table while a batch is claimed, sent and
recorded is captured as the code runs it, and EXPLAIN ANALYZE'd (in a savepoint rolled
back before the real statement runs) on a ledger where most rows are already sent. A
plan that reads the sent rows (a sequential scan, an index scan that filters them out,
the primary key walked with a filter) fails the test.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

from newsletter import progress, sending
from newsletter.models import Delivery, Issue
from tests.factories import EducationPieceFactory, IssueFactory, approve

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ROWS = 40_000
BATCH = 500
LEDGER = Delivery._meta.db_table


@pytest.fixture
def issue(main_topic):
    return approve(
        IssueFactory(
            subject="Plans",
            with_pieces=[EducationPieceFactory(title="A piece", body="Some text.")],
        )
    )


def build_ledger(issue: Issue, rows: int) -> None:
    """`rows` active readers and a queued row for each, as start_issue leaves them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO newsletter_subscriber (email, first_name, status, secret, language,"
            " source, created_at, updated_at, confirmed_at)"
            " SELECT 'plan' || g || '@example.com', 'Reader', 'active', md5(g::text), 'en',"
            " '', now(), now(), now() FROM generate_series(1, %s) AS g",
            [rows],
        )
        cursor.execute(
            f"INSERT INTO {LEDGER} (issue_id, subscriber_id, status, attempts, claim,"  # noqa: S608
            " esp_message_id, error, maybe_duplicate, updated_at)"
            " SELECT %s, id, 'queued', 0, '', '', '', false, now()"
            " FROM newsletter_subscriber WHERE email LIKE 'plan%%' ORDER BY id",
            [issue.pk],
        )
    Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENDING)
    issue.refresh_from_db()


def send_first(issue: Issue, rows: int) -> int:
    """Mark the first `rows` of the issue sent the way a send does (an UPDATE per row
    version, so their old versions are dead tuples, not vacuumed); the last id sent."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {LEDGER} SET status = 'sent', sent_at = now(), claim = 'x'"  # noqa: S608
            f" WHERE id IN (SELECT id FROM {LEDGER} WHERE issue_id = %s ORDER BY id LIMIT %s)"
            " RETURNING id",
            [issue.pk, rows],
        )
        last = max(row[0] for row in cursor.fetchall())
        cursor.execute(f"ANALYZE {LEDGER}")
    return last


@contextmanager
def explained() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Each statement on the ledger, with its EXPLAIN ANALYZE plan (run and rolled back
    in a savepoint just before the statement itself runs)."""
    plans: list[tuple[str, dict[str, Any]]] = []

    def explain(execute, sql, params, many, context):
        if LEDGER in sql and not many and sql.lstrip().split()[0] in {"SELECT", "UPDATE"}:
            raw = context["cursor"].cursor
            raw.execute("SAVEPOINT plan_probe")
            raw.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
            plans.append((sql, raw.fetchone()[0][0]["Plan"]))
            raw.execute("ROLLBACK TO SAVEPOINT plan_probe")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        yield plans


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def ledger_reads(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in nodes(plan) if node.get("Relation Name") == LEDGER]


def describe(plan: dict[str, Any], depth: int = 0) -> str:
    """The plan as EXPLAIN prints it, roughly: one line per node, for failure messages."""
    line = (
        f"{'  ' * depth}{plan['Node Type']} {plan.get('Relation Name', '')} "
        f"{plan.get('Index Name', '')} rows={plan.get('Actual Rows')} "
        f"removed={plan.get('Rows Removed by Filter', 0)}"
    )
    return "\n".join([line, *(describe(child, depth + 1) for child in plan.get("Plans", []))])


def assert_reads_only_the_batch(sql: str, plan: dict[str, Any]) -> None:
    for node in ledger_reads(plan):
        where = f"{node['Node Type']} {node.get('Index Name', '')} in: {sql}\n{describe(plan)}"
        assert node["Node Type"] != "Seq Scan", where
        removed = node.get("Rows Removed by Filter", 0) + node.get(
            "Rows Removed by Index Recheck", 0
        )
        assert removed <= 2 * BATCH, f"{removed} rows read and thrown away: {where}"


def claim_statements(plans):
    return [(sql, plan) for sql, plan in plans if "SKIP LOCKED" in sql]


def test_claim_walks_the_queued_rows_index_in_order_at_any_point_of_the_send(issue, settings):
    settings.NEWSLETTER_BATCH_SIZE = BATCH
    build_ledger(issue, ROWS)
    last_sent = send_first(issue, ROWS * 9 // 10)
    # A lane that has been sending all along carries on from where it stopped.
    sending._claimed_up_to[issue.pk] = last_sent

    with explained() as plans:
        assert sending.send_batch(issue_id=issue.pk) == BATCH

    claims = claim_statements(plans)
    assert claims, "the claim statement was not captured"
    sql, plan = claims[0]
    indexes = {node.get("Index Name") for node in ledger_reads(plan)}
    assert "delivery_queued_idx" in indexes, plan
    for node in ledger_reads(plan):
        is_pk_walk = node.get("Index Name") == f"{LEDGER}_pkey" and "Filter" in node
        assert not is_pk_walk, f"the primary key walked with a filter: {sql}"
    assert_reads_only_the_batch(sql, plan)


def test_claim_costs_the_same_at_the_start_and_near_the_end(issue, settings):
    settings.NEWSLETTER_BATCH_SIZE = BATCH
    build_ledger(issue, ROWS)
    with explained() as early:
        sending.send_batch(issue_id=issue.pk)
        sending.send_batch(issue_id=issue.pk)
    last_sent = send_first(issue, ROWS * 9 // 10)
    sending._claimed_up_to[issue.pk] = last_sent
    with explained() as late:
        sending.send_batch(issue_id=issue.pk)
        sending.send_batch(issue_id=issue.pk)

    def blocks(plans) -> int:
        _, plan = claim_statements(plans)[-1]
        return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]

    # Same work for the same batch (a little slack for index pages and the issue row).
    assert blocks(late) <= 2 * blocks(early) + 50, (blocks(early), blocks(late))


def test_every_statement_of_a_batch_reads_only_its_batch(issue, settings):
    settings.NEWSLETTER_BATCH_SIZE = BATCH
    build_ledger(issue, ROWS)
    last_sent = send_first(issue, ROWS * 9 // 10)
    sending._claimed_up_to[issue.pk] = last_sent

    with explained() as plans:
        sending.send_batch(issue_id=issue.pk)
    assert len(plans) >= 3  # claim, read the batch, record it
    for sql, plan in plans:
        assert_reads_only_the_batch(sql, plan)


def test_expired_leases_and_the_end_of_a_send_read_only_rows_in_flight(issue, settings):
    settings.NEWSLETTER_BATCH_SIZE = BATCH
    build_ledger(issue, ROWS)
    send_first(issue, ROWS - BATCH)
    with explained() as plans:
        while sending.send_batch(issue_id=issue.pk):
            pass
        sending.run_periodic()
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT
    expired = [(sql, plan) for sql, plan in plans if "lease_until <" in sql]
    assert expired, "the expired-lease claim was not captured"
    for sql, plan in plans:
        # The end-of-send checks read partial indexes; counting the issue's rows once,
        # for its final figures, is the one statement allowed to read them all.
        if "COUNT(" in sql.upper():
            continue
        assert_reads_only_the_batch(sql, plan)
    assert progress.issue_progress(issue).counts["sent"] == ROWS
