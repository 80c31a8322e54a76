import csv
import io
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from newsletter import importing, privacy
from newsletter.models import ConsentEvent, Subscriber
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

HEADER = "email,first_name,topics,consent,confirmed\n"


def run(text: str | bytes, capture=None, **kwargs) -> importing.ImportReport:
    data = text.encode() if isinstance(text, str) else text
    kwargs.setdefault("source", "test import")
    if capture is None:
        return importing.import_subscribers(data=data, **kwargs)
    with capture(execute=True):
        return importing.import_subscribers(data=data, **kwargs)


def lines_and_codes(problems) -> list[tuple[int, str]]:
    return [(problem.line, problem.code) for problem in problems]


# --- What a good file does ---------------------------------------------------------------


def test_confirmed_rows_become_active_and_the_rest_pending_with_a_confirmation_email(
    main_topic, django_capture_on_commit_callbacks
):
    report = run(
        HEADER + "Ann@Example.com,Ann,,paper form 2024-03-02,yes\n"
        "bob@example.com,Bob,,paper form 2024-03-02,no\n"
        "cy@example.com,,,clinic kiosk 2024-05-01,\n",
        django_capture_on_commit_callbacks,
    )

    assert report.imported
    assert (report.activated, report.pending, report.errors) == (1, 2, [])
    statuses = dict(Subscriber.objects.values_list("email", "status"))
    assert statuses == {
        "ann@example.com": "active",
        "bob@example.com": "pending",
        "cy@example.com": "pending",
    }
    assert Subscriber.objects.get(email="ann@example.com").confirmed_at is not None
    assert sorted(message.to[0] for message in mail.outbox) == ["bob@example.com", "cy@example.com"]
    assert {message.subject for message in mail.outbox} == {
        "Please confirm your Advances subscription"
    }


def test_each_imported_row_gets_an_imported_consent_event_with_its_consent_source(main_topic):
    run(HEADER + "ann@example.com,Ann,,paper form 2024-03-02,yes\n", file_name="fair.csv")

    event = Subscriber.objects.get().consent_events.get()
    assert event.kind == ConsentEvent.Kind.IMPORTED
    assert event.source == "paper form 2024-03-02"
    assert event.detail == {
        "import": "test import",
        "file": "fair.csv",
        "line": 2,
        "confirmed": True,
        "topics": ["advances"],
    }


def test_topics_are_given_by_slug_or_else_the_default_topics(main_topic, topic):
    run(HEADER + "ann@example.com,,breast-cancer; advances,form,yes\nbob@example.com,,,form,yes\n")
    ann = Subscriber.objects.get(email="ann@example.com")
    bob = Subscriber.objects.get(email="bob@example.com")
    assert set(ann.topics.values_list("slug", flat=True)) == {"breast-cancer", "advances"}
    assert list(bob.topics.values_list("slug", flat=True)) == ["advances"]


def test_only_email_and_consent_columns_are_needed_in_any_order(main_topic):
    report = run("consent,email\nform,ann@example.com\n")
    assert report.imported
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


def test_utf8_with_a_byte_order_mark_is_accepted(main_topic):
    report = run("\ufeff".encode() + (HEADER + "zoe@example.com,Zoë,,formulaire,yes\n").encode())
    assert report.imported
    assert Subscriber.objects.get().first_name == "Zoë"


# --- Encodings --------------------------------------------------------------------------


def test_latin1_bytes_are_refused_naming_every_bad_line(main_topic):
    text = (
        HEADER
        + "ann@example.com,Zoë,,form,yes\nbob@example.com,Bob,,form,yes\nc@example.com,Renée,,f,\n"
    )

    report = run(text.encode("latin-1"))

    assert not report.imported
    assert lines_and_codes(report.errors) == [(2, "encoding"), (4, "encoding")]
    assert "Not UTF-8 (byte 0xEB" in report.errors[0].message
    assert "Save it as UTF-8" in report.errors[0].message
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_and_utf32_files_are_refused_with_a_clear_message(main_topic, codec):
    report = run((HEADER + "ann@example.com,Ann,,form,yes\n").encode(codec))

    assert not report.imported
    assert lines_and_codes(report.errors) == [(0, "encoding")]
    assert "save it as UTF-8" in report.errors[0].message
    assert not Subscriber.objects.exists()


# --- Bad rows ---------------------------------------------------------------------------


def test_every_bad_row_is_reported_with_its_line_number_and_nothing_is_imported(main_topic):
    report = run(
        HEADER + "good@example.com,Good,,form,yes\n"  # 2
        "not-an-address,X,,form,yes\n"  # 3
        "nc@example.com,No consent,,,yes\n"  # 4
        "\n"  # 5: blank, ignored
        'ml@example.com,"Multi\nLine",,form,yes\n'  # 6-7: header injection
        "t@example.com,,no-such-topic,form,yes\n"  # 8
        "c@example.com,,,form,maybe\n"  # 9
        "x@example.com,,,form,yes,extra\n"  # 10
        "y@example.com,,,form,yes\n"  # 11: fine
    )

    assert not report.imported
    assert lines_and_codes(report.errors) == [
        (3, "bad_address"),
        (4, "missing_consent"),
        (6, "control_characters"),
        (8, "unknown_topic"),
        (9, "bad_confirmed"),
        (10, "columns"),
    ]
    assert not Subscriber.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert not mail.outbox


@pytest.mark.parametrize("column", ["email", "first_name", "topics", "consent", "confirmed"])
@pytest.mark.parametrize("attack", ["\r\nBcc: victim@example.org", "\nX-Header: 1", "\x00", "\x0b"])
def test_header_injection_attempts_in_any_field_are_refused(main_topic, column, attack):
    row = {
        "email": "ann@example.com",
        "first_name": "Ann",
        "topics": "advances",
        "consent": "form",
        "confirmed": "yes",
    }
    row[column] += attack
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)

    report = run(out.getvalue())

    assert not report.imported
    assert lines_and_codes(report.errors) == [(2, "control_characters")]
    assert column in report.errors[0].message
    assert not Subscriber.objects.exists()


def test_too_long_fields_are_reported(main_topic):
    report = run(
        HEADER + f"ann@example.com,{'A' * 101},,form,yes\n"
        f"bob@example.com,Bob,,{'c' * 201},yes\n"
        f"{'x' * 250}@example.com,,,form,yes\n"
    )
    assert lines_and_codes(report.errors) == [(2, "too_long"), (3, "too_long"), (4, "too_long")]
    assert "first_name: longer than 100" in report.errors[0].message


def test_a_header_without_the_required_columns_is_refused(main_topic):
    for header in ("email,first_name\n", "email,consent,phone\n", "email,consent,email\n", ""):
        report = run(header + "ann@example.com,x\n")
        assert lines_and_codes(report.errors) == [(1, "header")]
    assert not Subscriber.objects.exists()


def test_broken_quoting_is_reported_not_crashed_on(main_topic):
    report = run(HEADER + 'ann@example.com,"Ann"x,,form,yes\n')
    assert [code for _, code in lines_and_codes(report.errors)] == ["malformed"]


def test_a_file_larger_than_5_mb_is_refused_before_anything_else(main_topic):
    row = "reader@example.com,Reader,,paper form 2024-03-02,yes\n"
    data = (HEADER + row * (importing.MAX_BYTES // len(row) + 1)).encode()

    report = run(data)

    assert len(data) > 5 * 1024 * 1024
    assert lines_and_codes(report.errors) == [(0, "too_large")]
    assert "larger than 5 MB" in report.errors[0].message
    assert not Subscriber.objects.exists()


def test_a_file_with_more_rows_than_the_limit_is_refused(main_topic, monkeypatch):
    monkeypatch.setattr(importing, "MAX_ROWS", 3)
    rows = "".join(f"r{n}@example.com,,,form,yes\n" for n in range(4))

    report = run(HEADER + rows)

    assert lines_and_codes(report.errors) == [(5, "too_many_rows")]
    assert not Subscriber.objects.exists()


def test_the_report_of_a_file_wrong_everywhere_is_capped(main_topic, monkeypatch):
    monkeypatch.setattr(importing, "MAX_ERRORS", 5)
    report = run(HEADER + "bad,,,form,yes\n" * 20)
    assert len(report.errors) == 6
    assert report.errors[-1].code == "too_many_errors"


# --- Addresses already known ------------------------------------------------------------


def test_duplicates_within_the_file_are_imported_once_and_reported(main_topic):
    report = run(
        HEADER + "ann@example.com,Ann,,form,yes\n"
        "bob@example.com,Bob,,form,yes\n"
        "ANN@example.com,Annie,,form,no\n"
    )

    assert report.imported
    assert Subscriber.objects.get(email="ann@example.com").first_name == "Ann"
    assert lines_and_codes(report.skipped) == [(4, "duplicate")]
    assert "line 2" in report.skipped[0].message


def test_an_active_subscriber_is_not_downgraded_and_is_reported(main_topic, subscriber_factory):
    active = subscriber_factory(email="ann@example.com", first_name="Ann")

    report = run(HEADER + "ann@example.com,Mallory,,form,no\n")

    active.refresh_from_db()
    assert (active.status, active.first_name) == (Subscriber.Status.ACTIVE, "Ann")
    assert lines_and_codes(report.skipped) == [(2, "already_active")]
    assert not active.consent_events.exists()
    assert not mail.outbox


@pytest.mark.parametrize(
    "status",
    [Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED, Subscriber.Status.UNSUBSCRIBED],
)
def test_suppressed_and_unsubscribed_addresses_are_never_reactivated(
    main_topic, subscriber_factory, status, django_capture_on_commit_callbacks
):
    subscriber = subscriber_factory(email="ann@example.com", status=status)

    report = run(HEADER + "ann@example.com,Ann,,form,yes\n", django_capture_on_commit_callbacks)

    subscriber.refresh_from_db()
    assert subscriber.status == status
    assert report.imported
    assert report.activated == 0
    assert [line for line, _ in lines_and_codes(report.skipped)] == [2]
    assert not mail.outbox


def test_an_erased_address_is_not_imported_again(
    main_topic, subscriber_factory, django_capture_on_commit_callbacks
):
    ann = subscriber_factory(email="ann@example.com")
    privacy.erase_subscriber(subscriber_id=ann.pk, source="test")

    report = run(
        HEADER + "Ann@Example.com,Ann,,form,yes\nbob@example.com,,,form,no\n",
        django_capture_on_commit_callbacks,
    )

    assert report.imported
    assert lines_and_codes(report.skipped) == [(2, "suppressed")]
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["bob@example.com"]
    assert [message.to for message in mail.outbox] == [["bob@example.com"]]


def test_an_erased_address_that_signed_up_again_is_left_to_its_own_confirmation(
    main_topic, subscriber_factory
):
    ann = subscriber_factory(email="ann@example.com")
    privacy.erase_subscriber(subscriber_id=ann.pk, source="test")
    again = subscriber_factory(email="ann@example.com", status=Subscriber.Status.PENDING)

    report = run(HEADER + "ann@example.com,Ann,,form,yes\n")

    again.refresh_from_db()
    assert again.status == Subscriber.Status.PENDING
    assert lines_and_codes(report.skipped) == [(2, "suppressed")]


def test_a_pending_subscriber_confirmed_in_the_file_becomes_active(main_topic, subscriber_factory):
    pending = subscriber_factory(email="ann@example.com", status=Subscriber.Status.PENDING)

    report = run(HEADER + "ann@example.com,,,paper form,yes\n")

    pending.refresh_from_db()
    assert pending.status == Subscriber.Status.ACTIVE
    assert report.activated == 1
    assert pending.consent_events.get().kind == ConsentEvent.Kind.IMPORTED


def test_a_pending_subscriber_gets_the_confirmation_again_only_when_not_just_sent(
    main_topic, subscriber_factory, django_capture_on_commit_callbacks
):
    recent = subscriber_factory(
        email="recent@example.com",
        status=Subscriber.Status.PENDING,
        last_notified_at=timezone.now(),
    )
    subscriber_factory(
        email="older@example.com",
        status=Subscriber.Status.PENDING,
        last_notified_at=timezone.now() - timedelta(hours=1),
    )

    run(
        HEADER + "recent@example.com,,,form,no\nolder@example.com,,,form,no\n",
        django_capture_on_commit_callbacks,
    )

    assert [message.to for message in mail.outbox] == [["older@example.com"]]
    recent.refresh_from_db()
    assert recent.status == Subscriber.Status.PENDING


# --- The command ------------------------------------------------------------------------


def test_import_command_imports_a_good_file(main_topic, tmp_path, capsys):
    path = tmp_path / "list.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "ann@example.com,Ann,,form,yes\n").encode())

    call_command("import_subscribers", str(path), "--source", "health fair")

    assert "Imported 1 active and 0 pending" in capsys.readouterr().out
    assert Subscriber.objects.get().consent_events.get().detail["import"] == "health fair"


def test_import_command_lists_every_error_and_fails(main_topic, tmp_path, capsys):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "bad,,,form,yes\nann@example.com,,,,yes\n")

    with pytest.raises(CommandError, match="2 error"):
        call_command("import_subscribers", str(path), "--source", "fair")

    err = capsys.readouterr().err
    assert "line 2:" in err
    assert "line 3: consent: empty" in err
    assert not Subscriber.objects.exists()


def test_import_command_refuses_a_huge_or_missing_file(db, tmp_path, monkeypatch):
    path = tmp_path / "list.csv"
    path.write_text(HEADER)
    monkeypatch.setattr(importing, "MAX_BYTES", 10)
    with pytest.raises(CommandError, match="larger than"):
        call_command("import_subscribers", str(path), "--source", "fair")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_subscribers", str(tmp_path / "nope.csv"), "--source", "fair")


# --- Export -----------------------------------------------------------------------------


def exported() -> list[dict[str, str]]:
    out = io.StringIO()
    importing.export_active_subscribers(out=out)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_export_lists_only_active_subscribers_with_topics_and_confirmed_at(
    subscriber_factory, main_topic, topic
):
    confirmed = timezone.now()
    subscriber_factory(
        email="ann@example.com",
        first_name="Ann",
        topics=[main_topic, topic],
        confirmed_at=confirmed,
    )
    subscriber_factory(email="bob@example.com", status=Subscriber.Status.PENDING)
    subscriber_factory(email="cy@example.com", status=Subscriber.Status.UNSUBSCRIBED)

    rows = exported()

    assert len(rows) == 1
    assert rows[0]["email"] == "ann@example.com"
    assert rows[0]["first_name"] == "Ann"
    assert set(rows[0]["topics"].split(";")) == {"advances", "breast-cancer"}
    assert rows[0]["confirmed_at"] == confirmed.isoformat()


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tTab"])
def test_export_defuses_cells_a_spreadsheet_would_run_as_formulas(subscriber_factory, name):
    subscriber_factory(first_name=name)
    assert exported()[0]["first_name"] == "'" + name


def test_export_command_writes_csv(subscriber_factory, capsys):
    subscriber_factory(email="ann@example.com")
    call_command("export_subscribers")
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "email,first_name,topics,confirmed_at"
    assert "ann@example.com" in out


# --- Admin ------------------------------------------------------------------------------


@pytest.fixture
def publisher(client):
    client.force_login(UserFactory(groups=["Publishers"], username="pat"))
    return client


def upload(client, content: bytes, source: str = "health fair"):
    return client.post(
        reverse("admin:newsletter_subscriber_import"),
        {"file": SimpleUploadedFile("list.csv", content, "text/csv"), "source": source},
    )


def test_changelist_links_to_import_and_export_for_publishers(publisher):
    content = publisher.get(reverse("admin:newsletter_subscriber_changelist")).content.decode()
    assert reverse("admin:newsletter_subscriber_import") in content
    assert reverse("admin:newsletter_subscriber_export_csv") in content


def test_publisher_imports_a_csv_from_the_admin_upload_page(
    publisher, main_topic, django_capture_on_commit_callbacks
):
    assert publisher.get(reverse("admin:newsletter_subscriber_import")).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(publisher, (HEADER + "ann@example.com,Ann,,form,no\n").encode())

    assert response.status_code == 200
    assert "0 active, 1 pending" in response.content.decode()
    event = Subscriber.objects.get().consent_events.get()
    assert event.detail["import"] == "health fair (admin by pat)"
    assert len(mail.outbox) == 1


def test_admin_import_shows_every_bad_line_and_imports_nothing(publisher, main_topic):
    response = upload(
        publisher,
        (HEADER + "ok@example.com,,,form,yes\nbad,,,form,yes\nx@example.com,,,,\n").encode(),
    )

    assert response.status_code == 400
    content = response.content.decode()
    assert "Nothing was imported" in content
    assert "<td>3</td>" in content
    assert "<td>4</td>" in content
    assert not Subscriber.objects.exists()


def test_admin_import_refuses_a_latin1_file_with_a_clear_message(publisher, main_topic):
    response = upload(publisher, (HEADER + "ann@example.com,Zoë,,form,yes\n").encode("latin-1"))
    assert "Not UTF-8" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_publisher_downloads_active_subscribers_as_csv(publisher, subscriber_factory):
    subscriber_factory(email="ann@example.com")

    response = publisher.get(reverse("admin:newsletter_subscriber_export_csv"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="advances-active-')
    assert b"ann@example.com" in response.content


def test_editors_cannot_import(client, main_topic):
    client.force_login(UserFactory(groups=["Editors"]))
    response = upload(client, (HEADER + "ann@example.com,Ann,,form,yes\n").encode())
    assert response.status_code == 403
    assert not Subscriber.objects.exists()
