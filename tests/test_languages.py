"""Advances in English and Spanish: addresses, the language switch, the reader's language
from signup to goodbye, emails and issues in their language, editors' translations, the
reading level per language, and the Spanish catalogue."""

import re
from html import unescape

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import translation

from newsletter import composing, emails, readability, sending, subscriptions, translations
from newsletter.models import EducationPiece, Issue, Subscriber
from newsletter.subscriptions import Origin
from newsletter.tokens import Purpose, make_token
from tests.conftest import links_in
from tests.factories import (
    EducationPieceFactory,
    IssueFactory,
    SubscriberFactory,
    UserFactory,
    approve,
)

pytestmark = pytest.mark.django_db


def spanish_piece(english, **fields):
    piece = EducationPieceFactory(language="es", **fields)
    translations.link_translation(piece=english, translation=piece)
    return piece


# --- Addresses ---------------------------------------------------------------------------


def test_english_stays_unprefixed_and_spanish_lives_under_es(client):
    english = client.get("/")
    spanish = client.get("/es/")
    assert english.status_code == spanish.status_code == 200
    assert '<html lang="en">' in english.content.decode()
    assert '<html lang="es">' in spanish.content.decode()
    assert spanish["Content-Language"] == "es"
    assert client.get("/es/newsletter/subscribe/").status_code == 200
    assert client.get("/en/").status_code == 404  # the default language has no prefix


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/openapi.json", "/admin/login/"])
def test_machine_and_staff_addresses_have_no_language_prefix(client, path):
    assert client.get(path).status_code != 404
    assert client.get("/es" + path).status_code == 404


def test_language_switch_keeps_the_reader_on_the_same_page_with_hreflang_alternates(client):
    page = client.get("/newsletter/privacy/").content.decode()
    assert 'href="/es/newsletter/privacy/" hreflang="es" lang="es">Español</a>' in page
    assert (
        '<link rel="alternate" hreflang="es" href="https://advances.test/es/newsletter/privacy/">'
        in page
    )
    assert (
        '<link rel="alternate" hreflang="en" href="https://advances.test/newsletter/privacy/">'
        in page
    )
    back = client.get("/es/newsletter/privacy/").content.decode()
    assert 'href="/newsletter/privacy/" hreflang="en" lang="en">English</a>' in back


@pytest.mark.parametrize("purpose", [Purpose.CONFIRM, Purpose.UNSUBSCRIBE, Purpose.PREFERENCES])
def test_token_links_work_under_either_prefix(client, subscriber_factory, purpose):
    reader = subscriber_factory(status="pending" if purpose == Purpose.CONFIRM else "active")
    token = make_token(reader, purpose)
    path = reverse(f"newsletter:{purpose}", args=[token])
    english = client.get(path)
    spanish = client.get("/es" + path)
    assert english.status_code == spanish.status_code == 200
    assert spanish["Content-Language"] == "es"


def test_a_forged_token_under_es_gets_the_spanish_invalid_link_page(client):
    response = client.get("/es/newsletter/unsubscribe/forged/")
    assert response.status_code == 400
    assert "Este enlace no funciona" in response.content.decode()


# --- The reader's language -----------------------------------------------------------------


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Runs what the block queued for after its commit (the emails), as a real
    transaction would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def signup(client, committed, prefix="", email="ana@example.com"):
    with committed():
        return client.post(
            f"{prefix}/newsletter/subscribe/",
            {"email": email, "first_name": "Ana", "website": ""},
        )


def test_signing_up_on_a_spanish_page_records_spanish_and_sends_a_spanish_confirmation(
    client, main_topic, committed
):
    response = signup(client, committed, "/es")

    assert response.status_code == 302
    assert response["Location"] == "/es/newsletter/subscribe/check-your-inbox/"
    reader = Subscriber.objects.get(email="ana@example.com")
    assert reader.language == "es"
    (message,) = mail.outbox
    assert message.extra_headers["Content-Language"] == "es"
    assert message.subject == "Por favor, confirme su suscripción a Advances"
    assert "Hola, Ana:" in message.body
    html = message.alternatives[0][0]
    assert '<html lang="es">' in html
    assert links_in(message, "/es/newsletter/confirm/")
    # The consent log keeps the words the reader saw, in their language.
    signup_event = reader.consent_events.get(kind="signup")
    assert signup_event.wording.startswith("Sí, envíenme por correo Advances")


def test_signing_up_on_an_english_page_records_english(client, main_topic, committed):
    signup(client, committed)
    assert Subscriber.objects.get(email="ana@example.com").language == "en"
    (message,) = mail.outbox
    assert message.extra_headers["Content-Language"] == "en"
    assert links_in(message, "https://advances.test/newsletter/confirm/")


def test_the_reader_changes_their_language_in_the_preference_center(client, subscriber_factory):
    reader = subscriber_factory(language="es")
    path = reverse("newsletter:preferences", args=[make_token(reader, Purpose.PREFERENCES)])
    page = client.get("/es" + path).content.decode()
    assert re.search(r'<input type="radio" name="language" value="es"[^>]* checked>', page)
    response = client.post(
        path,
        {"first_name": "Ana", "topics": [t.pk for t in reader.topics.all()], "language": "en"},
    )
    assert response.status_code == 200
    reader.refresh_from_db()
    assert reader.language == "en"
    assert reader.consent_events.get(kind="preferences").detail["language"] == "en"


@pytest.mark.parametrize(
    ("send", "subject"),
    [
        (lambda r: emails.send_subscriber_email(subscriber_id=r.pk, kind="welcome"), "Le damos"),
        (lambda r: emails.send_data_export(subscriber_id=r.pk), "Sus datos de Advances"),
    ],
)
def test_welcome_and_data_export_emails_are_in_the_readers_language(
    subscriber_factory, send, subject
):  # the services themselves, as the tasks call them
    reader = subscriber_factory(language="es", first_name="Ana")
    with translation.override("en"):  # whatever the sender's own language
        assert send(reader)
    (message,) = mail.outbox
    assert message.subject.startswith(subject)
    assert message.extra_headers["Content-Language"] == "es"
    assert '<html lang="es">' in message.alternatives[0][0]
    assert links_in(message, "https://advances.test/es/newsletter/preferences/")


def test_unsubscribing_sends_one_goodbye_email_in_the_readers_language(
    subscriber_factory, committed
):
    reader = subscriber_factory(language="es", first_name="Ana")
    with committed():
        assert subscriptions.unsubscribe(subscriber=reader, origin=Origin())
        assert not subscriptions.unsubscribe(subscriber=reader, origin=Origin())
    (message,) = mail.outbox
    assert message.subject == "Su suscripción a Advances se canceló"
    assert "Este es el último correo" in message.body
    assert links_in(message, "https://advances.test/es/newsletter/subscribe/")


def test_a_pending_address_that_unsubscribes_gets_no_goodbye(subscriber_factory, committed):
    reader = subscriber_factory(status="pending")
    with committed():
        subscriptions.unsubscribe(subscriber=reader, origin=Origin())
    assert mail.outbox == []


# --- Issues in their language --------------------------------------------------------------


def test_a_spanish_issue_is_rendered_in_spanish_with_links_to_the_spanish_pages(main_topic):
    issue = IssueFactory(language="es", subject="Segunda opinión", slug="segunda-opinion")
    rendered = composing.render_issue(issue)
    assert '<html lang="es"' in rendered.html
    assert "Ver este correo en su navegador" in rendered.text
    assert "https://advances.test/es/newsletter/archive/segunda-opinion/" in rendered.text
    with translation.override(issue.language):
        values = emails.signed_links(1, "secret", ("unsubscribe",))
        headers = emails.list_headers(values["unsubscribe"])
    assert values["unsubscribe"].startswith("https://advances.test/es/newsletter/unsubscribe/")
    assert headers["Content-Language"] == "es"
    with translation.override(issue.language):
        values = composing.recipient_values(
            first_name="Ana", unsubscribe_url="", preferences_url=""
        )
    assert values["salutation"] == "Hola, Ana:"


def test_an_issue_reaches_only_readers_of_its_language(main_topic):
    spanish_reader = SubscriberFactory(language="es", topics=[main_topic])
    SubscriberFactory(language="en", topics=[main_topic])
    issue = approve(IssueFactory(language="es"))
    assert list(sending.audience(issue)) == [spanish_reader.pk]


def test_issue_test_send_is_in_the_issues_language(main_topic):
    issue = IssueFactory(language="es")
    emails.send_issue_test(issue_id=issue.pk, addresses=["ed@example.org"], first_name="Ed")
    (message,) = mail.outbox
    assert message.extra_headers["Content-Language"] == "es"
    assert "Hola, Ed:" in message.body


def test_each_languages_archive_and_feed_show_only_its_issues(client, main_topic):
    IssueFactory(
        subject="English issue", slug="english", status="sent", sent_at="2026-01-01T00:00Z"
    )
    IssueFactory(
        subject="Número en español", slug="espanol", language="es", status="sent",
        sent_at="2026-01-02T00:00Z",
    )  # fmt: skip
    english = client.get("/newsletter/archive/").content.decode()
    spanish = client.get("/es/newsletter/archive/").content.decode()
    assert "English issue" in english
    assert "Número en español" not in english
    assert "Número en español" in spanish
    assert "English issue" not in spanish
    feed = client.get("/es/newsletter/archive/feed/").content.decode()
    assert "Número en español" in feed
    assert "English issue" not in feed
    assert 'xml:lang="es"' in feed
    assert "English issue" not in client.get("/es/newsletter/archive/feed/").content.decode()
    assert "Número en español" not in client.get("/newsletter/archive/feed/").content.decode()


def test_an_issue_opened_under_another_prefix_is_sent_to_its_own_language(client, main_topic):
    IssueFactory(slug="espanol", language="es", status="sent", sent_at="2026-01-02T00:00Z")
    response = client.get("/newsletter/archive/espanol/")
    assert response.status_code == 302
    assert response["Location"] == "/es/newsletter/archive/espanol/"
    page = client.get("/es/newsletter/archive/espanol/").content.decode()
    # Its switch leads to the English archive, not to a page that does not exist.
    assert 'href="/newsletter/archive/" hreflang="en"' in page


def test_the_spanish_home_page_shows_the_spanish_pieces_with_the_review_note(client):
    english = EducationPieceFactory(title="Why it matters", home_position=1)
    spanish_piece(english, title="Por qué importa", home_position=1, needs_translation_review=True)
    spanish = client.get("/es/").content.decode()
    assert "Por qué importa" in spanish
    assert "Why it matters" not in spanish
    assert "todavía no la ha revisado un profesional clínico" in spanish
    assert "Por qué importa" not in client.get("/").content.decode()


def test_topic_names_are_shown_in_the_pages_language(client, main_topic):
    main_topic.name = "Breast cancer news"
    main_topic.translations = {"es": {"name": "Noticias sobre el cáncer de mama"}}
    main_topic.save()
    assert (
        "Noticias sobre el cáncer de mama"
        in client.get("/es/newsletter/subscribe/").content.decode()
    )
    assert "Breast cancer news" in client.get("/newsletter/subscribe/").content.decode()


# --- Editors ---------------------------------------------------------------------------------


def test_pieces_link_into_one_group_with_one_piece_per_language():
    english = EducationPieceFactory()
    spanish = spanish_piece(english)
    assert translations.translations_of(english) == {"en": english, "es": spanish}
    assert translations.missing_languages(english) == []
    with pytest.raises(translations.TranslationConflict):
        translations.link_translation(piece=english, translation=EducationPieceFactory())
    with pytest.raises(translations.TranslationConflict):
        translations.link_translation(
            piece=english, translation=EducationPieceFactory(language="es")
        )


def test_creating_the_spanish_issue_copies_the_structure_and_uses_spanish_pieces(main_topic):
    translated, untranslated = EducationPieceFactory(), EducationPieceFactory(title="Alone")
    spanish = spanish_piece(translated)
    original = IssueFactory(with_pieces=[translated, untranslated])

    made = translations.create_translated_issue(issue_id=original.pk, language="es")

    assert made.issue.language == "es"
    assert made.issue.status == Issue.Status.DRAFT
    assert list(made.issue.pieces.all()) == [spanish]
    assert made.untranslated == [untranslated]
    assert set(made.issue.topics.all()) == set(original.topics.all())
    assert made.issue.slug == f"{original.slug}-es"
    assert list(original.pieces.order_by("pk")) == [translated, untranslated]


def test_audience_per_language_counts_the_readers_of_each(main_topic):
    SubscriberFactory.create_batch(2, language="es", topics=[main_topic])
    SubscriberFactory(language="en", topics=[main_topic])
    SubscriberFactory(language="es", status="unsubscribed", topics=[main_topic])
    rows = translations.audience_by_language(IssueFactory(language="es"))
    assert [(r.code, r.readers, r.receives) for r in rows] == [("en", 1, False), ("es", 2, True)]


def staff(client, **kwargs):
    client.force_login(UserFactory(is_superuser=True, **kwargs))
    return client


def test_the_admin_lists_pieces_lacking_a_translation(client):
    english = EducationPieceFactory(title="Has both")
    spanish_piece(english, title="Tiene las dos")
    EducationPieceFactory(title="English only")
    staff(client)
    url = reverse("admin:newsletter_educationpiece_changelist")
    missing = client.get(url, {"missing": "es"}).content.decode()
    assert "English only" in missing
    assert "Has both" not in missing
    assert "⚠ no es" in client.get(url).content.decode()


def test_an_editor_links_a_translation_in_the_piece_form(client):
    english = EducationPieceFactory(title="Why it matters")
    staff(client)
    response = client.post(
        reverse("admin:newsletter_educationpiece_add"),
        {
            "title": "Por qué importa", "slug": "por-que-importa", "language": "es",
            "summary": "Breve.", "body": "Un texto corto.", "translation_of": english.pk,
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()
    spanish = EducationPiece.objects.get(slug="por-que-importa")
    english.refresh_from_db()
    assert translations.translations_of(english)["es"] == spanish


def test_the_admin_creates_the_spanish_issue_from_an_english_one(client, main_topic):
    original = IssueFactory(subject="Second opinions")
    staff(client)
    response = client.post(
        reverse("admin:newsletter_issue_translate", args=[original.pk, "es"]), follow=True
    )
    copy = Issue.objects.get(language="es")
    assert response.redirect_chain[-1][0] == reverse(
        "admin:newsletter_issue_change", args=[copy.pk]
    )
    assert "Created the Spanish issue" in response.content.decode()
    changelist = client.post(
        reverse("admin:newsletter_issue_changelist"),
        {"action": "create_issue_es", "_selected_action": [original.pk]},
    )
    assert changelist.status_code == 302
    assert Issue.objects.filter(language="es").count() == 2


def test_the_send_page_shows_the_audience_per_language(client, main_topic):
    SubscriberFactory.create_batch(3, language="es", topics=[main_topic])
    issue = IssueFactory(language="es")
    staff(client)
    page = client.get(reverse("admin:newsletter_issue_send", args=[issue.pk])).content.decode()
    assert "Readers of these topics, per language" in page
    assert re.search(r'<td lang="es">Español</td><td>3</td><td>Yes', page)


@pytest.mark.parametrize(
    "name",
    [
        "admin:index", "admin:newsletter_educationpiece_changelist",
        "admin:newsletter_educationpiece_add", "admin:newsletter_issue_changelist",
        "admin:newsletter_issue_add", "admin:newsletter_subscriber_changelist",
        "admin:newsletter_topic_changelist",
    ],
)  # fmt: skip
def test_the_admin_works_in_spanish(client, name, main_topic):
    staff(client)
    response = client.get(reverse(name), HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 200
    assert response["Content-Language"] == "es"
    assert '<html lang="es"' in response.content.decode()


def test_the_admin_issue_pages_work_in_spanish(client, main_topic):
    issue = approve(IssueFactory(language="es", with_pieces=[EducationPieceFactory()]))
    staff(client)
    for name in ("change", "preview", "send", "progress"):
        url = reverse(f"admin:newsletter_issue_{name}", args=[issue.pk])
        assert client.get(url, HTTP_ACCEPT_LANGUAGE="es").status_code == 200, name


def test_reading_level_is_measured_per_language():
    plain_spanish = "Su médico le explica el plan. Usted puede hacer preguntas. Es su derecho."
    level = readability.reading_level(plain_spanish, "es")
    assert level.measure == "Fernández Huerta"
    assert level.meets_target  # an ease of 70 or more: plain Spanish
    hard = readability.reading_level(
        "La caracterización histopatológica multidisciplinaria determina "
        "individualizadamente las alternativas terapéuticas oncológicas disponibles.",
        "es",
    )
    assert not hard.meets_target
    assert "⚠" in str(hard)
    english = readability.reading_level("You can ask your doctor. It is your right.", "en")
    assert english.measure == "Flesch-Kincaid grade"
    assert english.meets_target


def test_reading_targets_are_a_setting(settings):
    settings.NEWSLETTER_READING_TARGETS = {"en": 2, "es": 99}
    assert not readability.reading_level("You can ask your doctor about it.", "en").meets_target
    assert not readability.reading_level("Usted puede preguntar.", "es").meets_target


# --- Every public page in Spanish -------------------------------------------------------------

# Words that are English and never Spanish: a Spanish page showing one has a string left
# untranslated (or not marked for translation at all).
ENGLISH_ONLY = set(
    """the and you your yours we our us is are was were be been have has had with this that
    these those for from to of in on at by it its not or if can will would should may
    what when where which who why how please here there about more email emails subscribe
    unsubscribe subscription subscribed preferences topics topic issue issues past privacy
    data sign up send sent confirm link page back again home erase help learn thank thanks
    welcome hello check inbox try bad request found allowed something went wrong
    breast second opinion trials survivorship newsletter free patient
    education reader readers address name first optional leave field empty""".split()  # noqa: SIM905
)
# Names that stay as they are in every language.
KEPT = {"advances", "english", "cancer"}
TEXT_RE = re.compile(r">([^<>]+)<")
ATTRIBUTE_RE = re.compile(r'\b(?:aria-label|title|placeholder|alt|content|value)="([^"]*)"')


def english_left_in(html: str) -> list[str]:
    """Text and attributes of a page that read as English."""
    body = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    pieces = TEXT_RE.findall(body) + ATTRIBUTE_RE.findall(body)
    found = []
    for piece in pieces:
        text = re.sub(r"https?://\S+", "", unescape(piece)).strip()
        if not text or text.startswith(("http", "/")) or "@" in text:
            continue
        # Words on their own: not parts of a file name, address or slug (my-data.json).
        words = {w.lower() for w in re.findall(r"(?<![\w.-])[A-Za-z]+(?![\w.-])", text)}
        if (words & ENGLISH_ONLY) - KEPT:
            found.append(text)
    return found


def test_the_english_detector_finds_english():
    assert english_left_in("<p>Check your inbox</p>") == ["Check your inbox"]
    assert english_left_in('<p>Revise su correo</p><a aria-label="Past issues">x</a>') == [
        "Past issues"
    ]


@pytest.fixture
def spanish_site(main_topic):
    """A Spanish reader in every state, a sent Spanish issue, Spanish pieces and topics,
    as a Spanish reader of the demo meets them."""
    main_topic.translations = {"es": {"name": "Advances"}}
    main_topic.save()
    piece = EducationPieceFactory(
        language="es", title="Por qué importa", body="Un texto corto y claro.", home_position=1,
        cta_label="Llame", cta_url="tel:+16082666400",
    )  # fmt: skip
    IssueFactory(
        subject="Segunda opinión", slug="segunda-opinion", language="es", status="sent",
        preheader="De qué trata este número.", intro="Bienvenida a este número.",
        sent_at="2026-01-02T00:00Z", with_pieces=[piece],
    )  # fmt: skip
    return {
        status: SubscriberFactory(language="es", status=status, topics=[main_topic])
        for status in ("pending", "active", "unsubscribed")
    }


def spanish_pages(client, readers):
    """Every public page a Spanish reader can reach, with how it is reached."""
    pending, active, gone = readers["pending"], readers["active"], readers["unsubscribed"]

    def token(reader, purpose):
        return make_token(reader, purpose)

    confirm = f"/es/newsletter/confirm/{token(pending, Purpose.CONFIRM)}/"
    prefs = f"/es/newsletter/preferences/{token(active, Purpose.PREFERENCES)}/"
    unsubscribe = f"/es/newsletter/unsubscribe/{token(active, Purpose.UNSUBSCRIBE)}/"
    topics = [t.pk for t in active.topics.all()]
    yield "home", client.get("/es/")
    yield "subscribe", client.get("/es/newsletter/subscribe/")
    yield "subscribe errors", client.post("/es/newsletter/subscribe/", {"email": "not-an-address"})
    yield "check inbox", client.get("/es/newsletter/subscribe/check-your-inbox/")
    yield "privacy", client.get("/es/newsletter/privacy/")
    yield "archive", client.get("/es/newsletter/archive/")
    yield "archive issue", client.get("/es/newsletter/archive/segunda-opinion/")
    yield "feed", client.get("/es/newsletter/archive/feed/")
    yield "confirm", client.get(confirm)
    yield "preferences", client.get(prefs)
    yield "preferences errors", client.post(prefs, {"first_name": "Ana"})
    yield "preferences saved", client.post(prefs, {"first_name": "Ana", "topics": topics})
    yield "data export", client.post(prefs + "my-data/")
    yield "data export again", client.post(prefs + "my-data/")
    yield "erase", client.get(prefs + "erase/")
    yield (
        "inactive preferences",
        client.get(f"/es/newsletter/preferences/{token(gone, Purpose.PREFERENCES)}/"),
    )
    yield "unsubscribe", client.get(unsubscribe)
    yield "invalid link", client.get("/es/newsletter/confirm/forged/")
    yield "not found", client.get("/es/no-such-page/")
    yield "embed form", client.post("/es/newsletter/embed/subscribe/", {"email": "x"})
    yield "embed thanks", client.get("/es/newsletter/embed/thanks/")
    yield "confirmed", client.post(confirm)
    yield "already confirmed", client.post(confirm)
    yield "unsubscribed", client.post(unsubscribe)
    yield (
        "erased",
        client.post(f"/es/newsletter/preferences/{token(gone, Purpose.PREFERENCES)}/erase/"),
    )


def test_every_public_page_under_es_is_in_spanish(client, spanish_site, settings):
    settings.NEWSLETTER_EMBED_ORIGINS = ["https://www.example.org"]
    seen = 0
    for name, response in spanish_pages(client, spanish_site):
        assert response.status_code < 500, name
        if response.status_code in (301, 302):
            continue
        seen += 1
        html = response.content.decode()
        assert response["Content-Language"] == "es", name
        if "html" in response.get("Content-Type", ""):
            assert '<html lang="es">' in html, name
        assert english_left_in(html) == [], name
    assert seen >= 20


def test_every_email_to_a_spanish_reader_is_in_spanish(client, spanish_site, committed):
    with committed():
        list(spanish_pages(client, spanish_site))
    signup(client, committed, "/es", email="nueva@example.com")
    assert len(mail.outbox) >= 4
    for message in mail.outbox:
        assert message.extra_headers["Content-Language"] == "es", message.subject
        assert english_left_in(f">{message.subject}<") == [], message.subject
        html = message.alternatives[0][0]
        assert english_left_in(html) == [], message.subject
        assert english_left_in(">" + message.body.replace("\n", "<>") + "<") == []


# --- The catalogue ---------------------------------------------------------------------------


def test_the_checker_lists_untranslated_and_fuzzy_entries(tmp_path):
    from newsletter import catalogues

    folder = tmp_path / "es" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "django.po").write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Done"\nmsgstr "Hecho"\n\nmsgid "Missing"\nmsgstr ""\n\n'
        '#, fuzzy\nmsgid "Guessed"\nmsgstr "Adivinado"\n',
        encoding="utf-8",
    )
    found = [(gap.kind, gap.msgid) for gap in catalogues.gaps(tmp_path)]
    assert found == [("untranslated", "Missing"), ("fuzzy", "Guessed")]
    assert catalogues.main(["--check", "--locale-dir", str(tmp_path)]) == 1
    written = catalogues.compile_catalogues(tmp_path)
    assert written == [folder / "django.mo"]
    assert catalogues.compile_catalogues(tmp_path) == []  # up to date: nothing to do


def test_the_spanish_catalogue_has_no_gaps():
    from newsletter import catalogues

    assert [str(gap) for gap in catalogues.gaps()] == []
    assert [str(gap) for gap in catalogues.obsolete()] == []


def test_issue_client_side_language_is_the_issues():
    """An English issue's links lead to the English pages even when an editor working in
    Spanish renders it."""
    with translation.override("es"):
        assert composing.archive_url(Issue(slug="x", language="en")) == (
            "https://advances.test/newsletter/archive/x/"
        )
