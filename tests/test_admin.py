import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from newsletter.models import ConsentEvent, Subscriber, Topic
from tests.factories import UserFactory

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
