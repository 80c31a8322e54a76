"""Spanish end to end, with real parts: the reader's whole journey over real HTTP, issues
in each language through a real Celery worker and the fake ESP, and axe-core in the real
browser on the Spanish pages."""

import re
from collections import Counter

import pytest
import requests
from django.core import mail
from django.utils import timezone

from newsletter import sending
from newsletter.models import Delivery, Issue, Subscriber
from newsletter.tokens import Purpose, make_token
from tests.conftest import links_in, path_of, wait_until
from tests.factories import EducationPieceFactory, IssueFactory, SubscriberFactory, approve
from tests.test_browser import axe_violations, browser, describe, open_page  # noqa: F401
from tests.test_delivery_worker import mailgun_env

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def form_token(response: requests.Response, session: requests.Session) -> str:
    """The page's CSRF token. Its cookie is marked Secure (DEBUG is off), which requests
    keeps off plain http://127.0.0.1; a browser sends it to a loopback address, so the
    session does too."""
    for cookie in session.cookies:
        cookie.secure = False
    match = CSRF_RE.search(response.text)
    assert match, response.text[:500]
    return match.group(1)


def only_message_to(address: str, since: int = 0) -> mail.EmailMessage:
    (message,) = [m for m in mail.outbox[since:] if address in m.to]
    return message


def test_the_whole_reader_journey_in_spanish_over_real_http(live_server, main_topic):
    base = live_server.url
    browser_session = requests.Session()

    # Sign up under /es/.
    page = browser_session.get(f"{base}/es/newsletter/subscribe/", timeout=10)
    assert page.headers["Content-Language"] == "es"
    assert '<html lang="es">' in page.text
    signed_up = browser_session.post(
        f"{base}/es/newsletter/subscribe/",
        data={
            "csrfmiddlewaretoken": form_token(page, browser_session),
            "email": "lucia@example.com",
            "first_name": "Lucía",
            "topics": [main_topic.pk],
            "website": "",
        },
        headers={"Referer": f"{base}/es/newsletter/subscribe/"},
        timeout=10,
    )
    assert signed_up.url == f"{base}/es/newsletter/subscribe/check-your-inbox/"
    assert "Revise su correo" in signed_up.text
    reader = Subscriber.objects.get(email="lucia@example.com")
    assert reader.language == "es"

    # The Spanish confirmation email, its link to the Spanish page.
    confirmation = only_message_to("lucia@example.com")
    assert confirmation.extra_headers["Content-Language"] == "es"
    assert confirmation.subject == "Por favor, confirme su suscripción a Advances"
    assert '<html lang="es">' in confirmation.alternatives[0][0]
    confirm_path = path_of(links_in(confirmation, "/es/newsletter/confirm/")[0])

    # Confirm: GET shows the button, POST confirms.
    page = browser_session.get(base + confirm_path, timeout=10)
    assert "Confirmar mi suscripción" in page.text
    done = browser_session.post(
        base + confirm_path,
        data={"csrfmiddlewaretoken": form_token(page, browser_session)},
        headers={"Referer": base + confirm_path},
        timeout=10,
    )
    assert done.status_code == 200
    assert "Su suscripción está confirmada" in done.text
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.ACTIVE
    welcome = mail.outbox[-1]
    assert welcome.subject == "Le damos la bienvenida a Advances"
    assert welcome.extra_headers["Content-Language"] == "es"

    # Preferences, from the welcome email's link.
    preferences_path = path_of(links_in(welcome, "/es/newsletter/preferences/")[0])
    page = browser_session.get(base + preferences_path, timeout=10)
    assert "Sus preferencias de Advances" in page.text
    saved = browser_session.post(
        base + preferences_path,
        data={
            "csrfmiddlewaretoken": form_token(page, browser_session),
            "first_name": "Lucía",
            "topics": [main_topic.pk],
            "language": "es",
        },
        headers={"Referer": base + preferences_path},
        timeout=10,
    )
    assert "Sus preferencias se guardaron." in saved.text

    # One-click unsubscribe (RFC 8058), as a mail provider sends it: no cookie, no token.
    unsubscribe_url = welcome.extra_headers["List-Unsubscribe"].strip("<>")
    assert "/es/newsletter/unsubscribe/" in unsubscribe_url
    sent_before = len(mail.outbox)
    gone = requests.post(
        base + path_of(unsubscribe_url),
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert gone.status_code == 200
    assert gone.headers["Content-Language"] == "es"
    assert "Su suscripción se canceló" in gone.text
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.UNSUBSCRIBED

    # The goodbye email, in Spanish.
    goodbye = only_message_to("lucia@example.com", since=sent_before)
    assert goodbye.subject == "Su suscripción a Advances se canceló"
    assert goodbye.extra_headers["Content-Language"] == "es"
    assert "Este es el último correo que recibirá de nosotros." in goodbye.body
    assert links_in(goodbye, "/es/newsletter/subscribe/")


@pytest.mark.worker
def test_each_issue_reaches_only_the_readers_of_its_language_once_through_the_worker(
    start_worker, fake_esp, main_topic
):
    english_readers = SubscriberFactory.create_batch(12, language="en", topics=[main_topic])
    spanish_readers = SubscriberFactory.create_batch(9, language="es", topics=[main_topic])
    english = approve(
        IssueFactory(subject="Second opinions", with_pieces=[EducationPieceFactory()])
    )
    spanish = approve(
        IssueFactory(
            subject="Segundas opiniones",
            language="es",
            with_pieces=[EducationPieceFactory(language="es", body="Un texto claro.")],
        )
    )
    worker = start_worker(**mailgun_env(fake_esp, NEWSLETTER_BATCH_SIZE="5"))

    assert sending.start_issue(issue_id=spanish.pk) == 9
    assert sending.start_issue(issue_id=english.pk) == 12

    for issue in (spanish, english):
        assert wait_until(
            lambda issue=issue: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
            timeout=90,
        ), worker.log()
    by_issue: dict[str, list] = {}
    for entry in fake_esp.accepted:
        by_issue.setdefault(entry.metadata["issue"], []).append(entry)
    spanish_entries, english_entries = by_issue[str(spanish.pk)], by_issue[str(english.pk)]
    # Each reader of the language once, nobody else.
    assert Counter(e.to for e in spanish_entries) == Counter(r.email for r in spanish_readers)
    assert Counter(e.to for e in english_entries) == Counter(r.email for r in english_readers)
    for entry in spanish_entries:
        assert entry.subject == "Segundas opiniones"
        assert entry.headers["Content-Language"] == "es"
        assert "/es/newsletter/unsubscribe/" in entry.headers["List-Unsubscribe"]
        assert "Ver este correo en su navegador" in entry.text
        assert entry.text.count("Hola, ") == 1
    for entry in english_entries:
        assert entry.headers["Content-Language"] == "en"
        assert "https://advances.test/newsletter/unsubscribe/" in entry.headers["List-Unsubscribe"]
    assert not Delivery.objects.exclude(status=Delivery.Status.SENT).exists()


@pytest.mark.browser
def test_the_spanish_pages_have_no_wcag_violations_in_the_browser(open_page, main_topic):  # noqa: F811
    main_topic.translations = {"es": {"name": "Advances"}}
    main_topic.save()
    piece = EducationPieceFactory(
        language="es", title="Por qué importa", body="- **Otro radiólogo** puede revisar sus "
        "estudios.", home_position=1, needs_translation_review=True,
        cta_label="Llamar al (608) 266-6400", cta_url="tel:+16082666400",
    )  # fmt: skip
    IssueFactory(
        subject="Segunda opinión", slug="segunda-opinion", language="es", status="sent",
        sent_at=timezone.now(), with_pieces=[piece],
    )  # fmt: skip
    active = SubscriberFactory(language="es", topics=[main_topic])
    gone = SubscriberFactory(language="es", status="unsubscribed", topics=[main_topic])
    pending = SubscriberFactory(language="es", status="pending", topics=[main_topic])

    def tokened(name, reader, purpose):
        return f"/es/newsletter/{name}/{make_token(reader, purpose)}/"

    paths = [
        "/es/",
        "/es/newsletter/subscribe/",
        "/es/newsletter/subscribe/check-your-inbox/",
        "/es/newsletter/privacy/",
        "/es/newsletter/archive/",
        "/es/newsletter/archive/segunda-opinion/",
        tokened("confirm", pending, Purpose.CONFIRM),
        tokened("preferences", active, Purpose.PREFERENCES),
        tokened("preferences", gone, Purpose.PREFERENCES),
        tokened("unsubscribe", active, Purpose.UNSUBSCRIBE),
        "/es/newsletter/confirm/forged/",
        "/es/no-such-page/",
    ]
    page = open_page()
    problems = []
    for path in paths:
        page.goto(path)
        assert page.get_attribute("html", "lang") == "es", path
        violations = axe_violations(page)
        if violations:
            problems.append(f"{path}:\n{describe(violations)}")
    # A form's answer too: the signup with a bad address, in Spanish.
    page.goto("/es/newsletter/subscribe/")
    page.get_by_label("Correo electrónico").fill("no-es-una-direccion")
    with page.expect_navigation():
        page.get_by_role("button", name="Suscribirse", exact=True).click()
    if violations := axe_violations(page):
        problems.append(f"signup errors:\n{describe(violations)}")
    assert problems == [], "\n".join(problems)
