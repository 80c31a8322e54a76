"""CSV import and export of subscribers.

Import is all-or-nothing: the whole file is checked first, every bad line reported
with its number and reason, and only a file without errors is written, in one
transaction. Nobody becomes active without proven consent (a consent source on the
row) and confirmed=yes; everyone else becomes pending and gets the ordinary,
throttled confirmation email. An address that is suppressed (bounced, complained,
unsubscribed, or erased: known only by its keyed hash) is never put back on the list
by an import; it is skipped and reported, and its owner can always sign up again on
the web, which is a fresh double opt-in.
"""

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from newsletter import privacy
from newsletter.errors import NewsletterError
from newsletter.models import ConsentEvent, Subscriber, Topic
from newsletter.subscriptions import SubscriberEmail, default_topics, normalize_email

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
# Enough to show what is wrong with a file that is wrong everywhere, without a report
# as long as the file itself.
MAX_ERRORS = 200
COLUMNS = ("email", "first_name", "topics", "consent", "confirmed")
REQUIRED_COLUMNS = ("email", "consent")
MAX_LENGTHS = {"email": 254, "first_name": 100, "topics": 1000, "consent": 200, "confirmed": 10}
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = ("email", "first_name", "topics", "confirmed_at")

Status = Subscriber.Status


class Writable(Protocol):
    def write(self, text: str, /) -> object: ...


class ImportConflict(NewsletterError):
    """The list changed while the file was being imported (e.g. a web signup of one of
    its addresses); nothing was imported and it can simply be run again."""


@dataclass(frozen=True)
class RowProblem:
    """One line of the report: a line number (0 for the file as a whole), a code and
    a sentence for the person who made the file."""

    line: int
    code: str
    message: str


@dataclass(frozen=True)
class ImportRow:
    line: int
    email: str
    first_name: str
    topics: tuple[Topic, ...]
    consent: str
    confirmed: bool


@dataclass
class ImportReport:
    errors: list[RowProblem] = field(default_factory=list)
    # Rows that were fine but left alone: duplicates, already active, suppressed.
    skipped: list[RowProblem] = field(default_factory=list)
    activated: int = 0
    pending: int = 0
    rows: int = 0
    imported: bool = False

    def error(self, line: int, code: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowProblem(line, code, message))
        elif len(self.errors) == MAX_ERRORS:
            self.errors.append(
                RowProblem(
                    line, "too_many_errors", f"More than {MAX_ERRORS} errors; stopped listing them."
                )
            )


def import_subscribers(*, data: bytes, source: str, file_name: str = "") -> ImportReport:
    """Import subscribers from CSV bytes (UTF-8, with or without BOM).

    Guarantees: a file with any error imports nothing, and the report lists every bad
    line (encoding, address, control characters, consent, topics, columns, lengths);
    a file without errors is imported in one transaction, each imported row with an
    `imported` ConsentEvent carrying its consent source; active subscribers are never
    downgraded; suppressed, unsubscribed and erased addresses are never reactivated
    (reported in `skipped`); pending rows get a confirmation email after commit,
    throttled like a repeated signup. Raises ImportConflict if the list changed under
    the import.
    """
    report = ImportReport()
    rows = _parse(data, report)
    if report.errors:
        return report
    report.rows = len(rows)
    with transaction.atomic():
        try:
            _write(rows, source=source, file_name=file_name, report=report)
        except IntegrityError as error:
            raise ImportConflict(str(error)) from error
    report.imported = True
    return report


# --- Checking ---------------------------------------------------------------------------


def _decode(data: bytes, report: ImportReport) -> str | None:
    if len(data) > MAX_BYTES:
        report.error(
            0, "too_large", f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it."
        )
        return None
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        report.error(0, "encoding", 'The file is UTF-32; save it as UTF-8 ("CSV UTF-8").')
        return None
    # UTF-16 without a byte order mark: every other byte of ASCII text is a NUL. A
    # stray NUL in one field is a row error instead, reported with its line.
    sample = data[:4096]
    looks_utf16 = sample.count(b"\x00") * 4 > len(sample)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or looks_utf16:
        report.error(
            0, "encoding", 'The file is UTF-16 ("Unicode text"); save it as UTF-8 ("CSV UTF-8").'
        )
        return None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Name every line that is not UTF-8, so the person can find them all at once.
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            byte = line[error.start]
            report.error(
                number,
                "encoding",
                f"Not UTF-8 (byte 0x{byte:02X} at character {error.start + 1}); the file "
                'looks like Latin-1 or Windows-1252. Save it as UTF-8 ("CSV UTF-8").',
            )
    return None


def _records(text: str, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) per CSV record; a quoted field may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            report.error(reader.line_num or start, "malformed", f"Not valid CSV: {error}.")
            return
        end = reader.line_num
        yield start, record


def _parse(data: bytes, report: ImportReport) -> list[ImportRow]:
    text = _decode(data, report)
    if text is None:
        return []
    records = _records(text, report)
    header_line, header = next(records, (1, []))
    columns = [name.strip().lower() for name in header]
    unknown = [name for name in columns if name not in COLUMNS]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if unknown or missing or len(set(columns)) != len(columns):
        report.error(
            header_line,
            "header",
            "The first line must name the columns: email and consent, and optionally "
            f"first_name, topics and confirmed, each once (found: {', '.join(columns)[:200]}).",
        )
        return []
    topics = {topic.slug: topic for topic in Topic.objects.all()}
    defaults = tuple(default_topics())
    rows: list[ImportRow] = []
    seen: dict[str, int] = {}
    count = 0
    for line, record in records:
        if not any(value.strip() for value in record):
            continue
        count += 1
        if count > MAX_ROWS:
            report.error(line, "too_many_rows", f"More than {MAX_ROWS} rows; split the file.")
            break
        row = _check_row(line, columns, record, topics, defaults, report)
        if row is None:
            continue
        if row.email in seen:
            report.skipped.append(
                RowProblem(line, "duplicate", f"Same address as line {seen[row.email]}; ignored.")
            )
            continue
        seen[row.email] = line
        rows.append(row)
    return rows


def _check_row(
    line: int,
    columns: list[str],
    record: list[str],
    topics: dict[str, Topic],
    defaults: tuple[Topic, ...],
    report: ImportReport,
) -> ImportRow | None:
    if len(record) != len(columns):
        report.error(line, "columns", f"{len(record)} columns, expected {len(columns)}.")
        return None
    values = dict(zip(columns, record, strict=True))
    bad = False
    for name, value in values.items():
        # A line break or other control character inside a field is how header
        # injection into an email starts; a real name or address never has one.
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            report.error(
                line, "control_characters", f"{name}: contains a line break or control character."
            )
            bad = True
        elif len(value.strip()) > MAX_LENGTHS[name]:
            report.error(line, "too_long", f"{name}: longer than {MAX_LENGTHS[name]} characters.")
            bad = True
    if bad:
        return None
    email = normalize_email(values["email"])
    try:
        validate_email(email)
    except ValidationError:
        report.error(
            line, "bad_address", f"{values['email'].strip()[:80]!r} is not an email address."
        )
        bad = True
    consent = values["consent"].strip()
    if not consent:
        report.error(
            line, "missing_consent", "consent: empty; say where and when consent was given."
        )
        bad = True
    slugs = [slug.strip() for slug in values.get("topics", "").split(";") if slug.strip()]
    unknown = [slug for slug in slugs if slug not in topics]
    if unknown:
        report.error(line, "unknown_topic", f"topics: unknown {', '.join(unknown)}.")
        bad = True
    confirmed = values.get("confirmed", "").strip().lower()
    if confirmed not in YES | NO:
        report.error(line, "bad_confirmed", "confirmed: must be yes or no (or empty).")
        bad = True
    if bad:
        return None
    return ImportRow(
        line=line,
        email=email,
        first_name=values.get("first_name", "").strip(),
        topics=tuple(topics[slug] for slug in dict.fromkeys(slugs)) or defaults,
        consent=consent,
        confirmed=confirmed in YES,
    )


# --- Writing ----------------------------------------------------------------------------


def _write(rows: list[ImportRow], *, source: str, file_name: str, report: ImportReport) -> None:
    now = timezone.now()
    emails = [row.email for row in rows]
    existing: dict[str, Subscriber] = {}
    for start in range(0, len(emails), 1000):
        for found in Subscriber.objects.select_for_update().filter(
            email__in=emails[start : start + 1000]
        ):
            existing[found.email] = found
    # An erased address that signed up again on the web since has a pending row and a
    # hash: it is still skipped here, and its owner's own confirmation decides.
    erased = privacy.suppressed_hashes(emails)
    new: list[ImportRow] = []
    activate: list[tuple[ImportRow, Subscriber]] = []
    remind: list[tuple[ImportRow, Subscriber]] = []
    for row in rows:
        subscriber = existing.get(row.email)
        if subscriber is not None and subscriber.status == Status.ACTIVE:
            report.skipped.append(
                RowProblem(row.line, "already_active", "Already active; left as is.")
            )
        elif row.email in erased:
            report.skipped.append(
                RowProblem(row.line, "suppressed", "Erased or suppressed earlier; not added.")
            )
        elif subscriber is None:
            new.append(row)
        elif subscriber.status in (Status.BOUNCED, Status.COMPLAINED):
            report.skipped.append(
                RowProblem(row.line, "suppressed", f"Suppressed ({subscriber.status}); not added.")
            )
        elif subscriber.status == Status.UNSUBSCRIBED:
            report.skipped.append(
                RowProblem(row.line, "unsubscribed", "Unsubscribed; only they can sign up again.")
            )
        elif row.confirmed:
            activate.append((row, subscriber))
        else:
            remind.append((row, subscriber))

    created = Subscriber.objects.bulk_create(
        [
            Subscriber(
                email=row.email,
                first_name=row.first_name,
                source=f"import: {source}"[:100],
                status=Status.ACTIVE if row.confirmed else Status.PENDING,
                confirmed_at=now if row.confirmed else None,
                last_notified_at=None if row.confirmed else now,
            )
            for row in new
        ],
        batch_size=1000,
    )
    # Primary keys by address, read back: bulk_create does not return them everywhere.
    ids = _ids_by_email([row.email for row in new])
    Through = Subscriber.topics.through
    Through.objects.bulk_create(
        [
            Through(subscriber_id=ids[row.email], topic_id=topic.pk)
            for row in new
            for topic in row.topics
        ],
        batch_size=1000,
    )
    if activate:
        Subscriber.objects.filter(pk__in=[s.pk for _, s in activate]).update(
            status=Status.ACTIVE, confirmed_at=now, updated_at=now
        )
    wait = timedelta(minutes=settings.NEWSLETTER_RESEND_MINUTES)
    due = [
        s.pk for _, s in remind if s.last_notified_at is None or now - s.last_notified_at >= wait
    ]
    Subscriber.objects.filter(pk__in=due).update(last_notified_at=now)

    imported = [(row, ids[row.email]) for row in new] + [
        (row, s.pk) for row, s in (*activate, *remind)
    ]
    ConsentEvent.objects.bulk_create(
        [
            ConsentEvent(
                subscriber_id=subscriber_id,
                kind=ConsentEvent.Kind.IMPORTED,
                source=row.consent[:200],
                detail={
                    "import": source[:200],
                    "file": file_name[:200],
                    "line": row.line,
                    "confirmed": row.confirmed,
                    "topics": [topic.slug for topic in row.topics],
                },
            )
            for row, subscriber_id in imported
        ],
        batch_size=1000,
    )
    to_confirm = [ids[row.email] for row in new if not row.confirmed] + due
    transaction.on_commit(partial(_queue_confirmations, to_confirm))
    report.activated = sum(1 for row in new if row.confirmed) + len(activate)
    report.pending = len(created) - sum(1 for row in new if row.confirmed) + len(remind)
    report.skipped.sort(key=lambda problem: problem.line)


def _ids_by_email(emails: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(emails), 1000):
        ids.update(
            Subscriber.objects.filter(email__in=emails[start : start + 1000]).values_list(
                "email", "pk"
            )
        )
    return ids


def _queue_confirmations(subscriber_ids: list[int]) -> None:
    # The ordinary confirmation email, one task each; the task re-checks that the
    # subscriber is still pending when it runs. On the bulk queue: thousands of them
    # must not stand in front of the next reader who signs up on the site.
    from newsletter import tasks

    for subscriber_id in subscriber_ids:
        tasks.send_subscriber_email.apply_async(
            (subscriber_id, SubscriberEmail.CONFIRM.value), queue="bulk"
        )


# --- Export -----------------------------------------------------------------------------


def spreadsheet_safe(value: str) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a
    leading apostrophe (OWASP's advice against CSV injection)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def export_active_subscribers(*, out: Writable) -> int:
    """Write every active subscriber as CSV (email, first_name, topics separated by
    ";", confirmed_at in ISO 8601) to `out`, every cell safe to open in a spreadsheet.
    Returns how many rows were written."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    subscribers = (
        Subscriber.objects.filter(status=Status.ACTIVE).order_by("email").prefetch_related("topics")
    )
    for subscriber in subscribers.iterator(chunk_size=2000):
        writer.writerow(
            [
                spreadsheet_safe(subscriber.email),
                spreadsheet_safe(subscriber.first_name),
                spreadsheet_safe(";".join(topic.slug for topic in subscriber.topics.all())),
                subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "",
            ]
        )
        count += 1
    return count
