import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from newsletter.models import ConsentEvent, Subscriber, Topic
from tests.factories import UserFactory, approve

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def test_editors_and_publishers_groups_exist_with_their_rights(db):
    editors = set(Group.objects.get(name="Editors").permissions.values_list("codename", flat=True))
    publishers = set(
        Group.objects.get(name="Publishers").permissions.values_list("codename", flat=True)
    )
    assert "view_topic" in editors
    assert "view_subscriber" not in editors  # who reads a cancer newsletter is private
    assert {"view_subscriber", "view_consentevent"} <= publishers


def test_subscribers_are_searchable_and_filterable(admin_client_, subscriber_factory, topic):
    subscriber_factory(email="ada@example.com", topics=[topic])
    subscriber_factory(email="bob@example.com", status=Subscriber.Status.PENDING)
    url = reverse("admin:newsletter_subscriber_changelist")

    found = admin_client_.get(url, {"q": "ada"}).content.decode()
    assert "ada@example.com" in found
    assert "bob@example.com" not in found
    pending = admin_client_.get(url, {"status__exact": "pending"}).content.decode()
    assert "bob@example.com" in pending
    assert "ada@example.com" not in pending
    by_topic = admin_client_.get(url, {"topics__id__exact": topic.pk}).content.decode()
    assert "ada@example.com" in by_topic
    assert "bob@example.com" not in by_topic


def test_consent_log_is_shown_read_only(admin_client_, subscriber_factory):
    subscriber = subscriber_factory()
    ConsentEvent.objects.create(subscriber=subscriber, kind="signup", wording="Yes, email me")
    page = admin_client_.get(reverse("admin:newsletter_subscriber_change", args=[subscriber.pk]))
    content = page.content.decode()
    assert "Yes, email me" in content
    assert 'name="consent_events-0-wording"' not in content


def test_seed_demo_is_idempotent_and_covers_every_status(
    db, capsys, monkeypatch, tmp_path, settings
):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out

    assert set(Subscriber.objects.values_list("status", flat=True)) == set(Subscriber.Status.values)
    assert Topic.objects.filter(slug="advances", is_default=True).count() == 1
    assert first.splitlines()[-1] == second.splitlines()[-1]  # the same admin login, printed again
    password = (tmp_path / "admin-password").read_text().strip()
    assert f"admin / {password}" in second
    from django.contrib.auth import authenticate

    assert authenticate(username="admin", password=password) is not None
    counts = Subscriber.objects.count(), Topic.objects.count()
    call_command("seed_demo")
    assert (Subscriber.objects.count(), Topic.objects.count()) == counts


def test_seed_demo_uses_the_password_from_the_environment(db, monkeypatch, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "chosen-by-operator-42")
    call_command("seed_demo")
    from django.contrib.auth import authenticate

    assert authenticate(username="admin", password="chosen-by-operator-42") is not None


# --- Issues, pieces, preview and test sends ------------------------------------------------


@pytest.fixture
def demo_issue(main_topic):
    from tests.factories import EducationPieceFactory, IssueFactory

    return approve(
        IssueFactory(
            subject="Second opinions",
            with_pieces=[
                EducationPieceFactory(title="Why it matters", body="It can change your plan.")
            ],
        )
    )


def editor_client(client, group):
    client.force_login(UserFactory(groups=[group], first_name="Edna", email="edna@example.org"))
    return client


def test_editor_can_preview_an_issue_exactly_as_a_reader_gets_it(client, demo_issue):
    page = editor_client(client, "Editors").get(
        reverse("admin:newsletter_issue_preview", args=[demo_issue.pk])
    )
    assert page.status_code == 200
    content = page.content.decode()
    assert "Second opinions" in content
    assert "Why it matters" in content
    assert "Hello Edna," in content  # the placeholders are filled for the preview
    assert "srcdoc=" in content
    assert "Reading level" in content


def test_anonymous_users_cannot_preview_or_test_send(client, demo_issue):
    for name in ("preview", "test_send"):
        response = client.post(reverse(f"admin:newsletter_issue_{name}", args=[demo_issue.pk]))
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    assert not mail.outbox


def test_editor_sends_a_test_marked_as_a_test(client, demo_issue, settings):
    editor_client(client, "Editors").post(
        reverse("admin:newsletter_issue_test_send", args=[demo_issue.pk]),
        {"addresses": "edna@example.org, Second@Example.org"},
    )
    assert sorted(m.to[0] for m in mail.outbox) == ["edna@example.org", "second@example.org"]
    message = mail.outbox[0]
    assert message.subject == "[TEST] Second opinions"
    assert "Hello Edna," in message.body
    assert message.alternatives[0][1] == "text/html"
    assert settings.NEWSLETTER_POSTAL_ADDRESS in message.body
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_test_send_refuses_too_many_or_bad_addresses(client, demo_issue):
    c = editor_client(client, "Editors")
    url = reverse("admin:newsletter_issue_test_send", args=[demo_issue.pk])
    c.post(url, {"addresses": ",".join(f"r{n}@example.org" for n in range(6))})
    c.post(url, {"addresses": "x@example.org\nBcc: y@example.org"})
    assert not mail.outbox


def test_only_publishers_may_send_to_the_list(db):
    editor = UserFactory(groups=["Editors"])
    publisher = UserFactory(groups=["Publishers"])
    assert editor.has_perm("newsletter.change_issue")
    assert not editor.has_perm("newsletter.send_issue")
    assert publisher.has_perm("newsletter.send_issue")


def test_piece_with_an_image_without_alt_text_is_refused(client, main_topic):
    c = editor_client(client, "Editors")
    data = {
        "title": "Imaging",
        "slug": "imaging",
        "summary": "About imaging.",
        "body": "Look:\n\n![](https://example.org/scan.png)",
        "cta_label": "",
        "cta_url": "",
        "reviewed_by": "",
        "reviewed_on": "",
        "review_due": "",
        "home_position": "",
        "topic": "",
    }
    response = c.post(reverse("admin:newsletter_educationpiece_add"), data)
    assert response.status_code == 200
    assert "Every image needs alt text" in response.content.decode()
    data["body"] = "Look:\n\n![A mammogram image](https://example.org/scan.png)"
    response = c.post(reverse("admin:newsletter_educationpiece_add"), data)
    assert response.status_code == 302


def test_piece_list_flags_overdue_review_and_hard_reading(client):
    from tests.factories import EducationPieceFactory

    EducationPieceFactory(
        title="Hard",
        body="Multidisciplinary oncological consultation facilitates individualized "
        "therapeutic decision-making incorporating histopathological characterization.",
        reviewed_by="Dr. A",
        reviewed_on="2024-01-01",
        review_due="2025-01-01",
    )
    client.force_login(UserFactory(is_superuser=True))
    content = client.get(reverse("admin:newsletter_educationpiece_changelist")).content.decode()
    assert "Review overdue since 2025-01-01" in content
    assert "aim for 8 or below" in content


def test_editors_cannot_send_and_do_not_see_the_send_action(client, demo_issue):
    c = editor_client(client, "Editors")
    assert (
        c.post(
            reverse("admin:newsletter_issue_send", args=[demo_issue.pk]), {"action": "send"}
        ).status_code
        == 403
    )
    demo_issue.refresh_from_db()
    assert demo_issue.status == "draft"
    page = c.get(reverse("admin:newsletter_issue_change", args=[demo_issue.pk])).content.decode()
    assert "Send…" not in page
    assert "Preview and test" in page


def test_publisher_confirms_then_sends_and_sees_progress(
    client, demo_issue, main_topic, subscriber_factory, django_capture_on_commit_callbacks
):
    subscriber_factory.create_batch(3, topics=[main_topic])
    c = editor_client(client, "Publishers")
    url = reverse("admin:newsletter_issue_send", args=[demo_issue.pk])

    confirm = c.get(url).content.decode()
    assert "Yes, send to 3 readers now" in confirm
    assert "Advances: 3" in confirm
    with django_capture_on_commit_callbacks(execute=True):
        response = c.post(url, {"action": "send"})

    assert response.status_code == 302
    progress = c.get(response["Location"]).content.decode()
    assert "Sent" in progress
    assert len(mail.outbox) == 3
    demo_issue.refresh_from_db()
    assert demo_issue.status == "sent"


def test_publisher_schedules_an_issue_only_in_the_future(client, demo_issue):
    c = editor_client(client, "Publishers")
    url = reverse("admin:newsletter_issue_send", args=[demo_issue.pk])
    page = c.post(url, {"action": "schedule", "schedule": "1", "when": "2000-01-01T10:00"})
    assert "Choose a time in the future" in page.content.decode()
    c.post(url, {"action": "schedule", "schedule": "1", "when": "2999-01-01T10:00"})
    demo_issue.refresh_from_db()
    assert demo_issue.status == "scheduled"
