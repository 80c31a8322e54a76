import email
from email import policy

from django.core.mail import EmailMultiAlternatives, get_connection


def test_outbox_writes_each_message_as_one_eml_file(tmp_path):
    connection = get_connection("newsletter.outbox.OutboxEmailBackend", file_path=str(tmp_path))
    messages = []
    for n in range(2):
        message = EmailMultiAlternatives(
            f"Héllo {n}",
            "plain text",
            "Advances <a@example.org>",
            [f"r{n}@example.com"],
            connection=connection,
        )
        message.attach_alternative("<p>html</p>", "text/html")
        messages.append(message)

    assert connection.send_messages(messages) == 2

    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 2
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Subject"] in {"Héllo 0", "Héllo 1"}
    assert parsed.get_body(("plain",)).get_content().strip() == "plain text"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>html</p>"
    assert not list(tmp_path.glob("*.part"))


def test_outbox_messages_carry_a_message_id_on_the_sites_domain(tmp_path, settings):
    settings.SITE_URL = "https://news.cancer-center.example.org"
    settings.MESSAGE_ID_DOMAIN = ""
    connection = get_connection("newsletter.outbox.OutboxEmailBackend", file_path=str(tmp_path))
    connection.send_messages([EmailMultiAlternatives("Hi", "t", "a@example.org", ["r@x.org"])])
    parsed = email.message_from_bytes(next(tmp_path.glob("*.eml")).read_bytes())
    assert parsed["Message-ID"].endswith("@news.cancer-center.example.org>")


def test_message_id_domain_setting_wins_and_a_senders_own_id_is_kept(tmp_path, settings):
    settings.MESSAGE_ID_DOMAIN = "mail.example.org"
    connection = get_connection("newsletter.outbox.OutboxEmailBackend", file_path=str(tmp_path))
    ours = EmailMultiAlternatives("Hi", "t", "a@example.org", ["r@x.org"])
    theirs = EmailMultiAlternatives(
        "Hi", "t", "a@example.org", ["s@x.org"], headers={"Message-ID": "<kept@example.net>"}
    )
    connection.send_messages([ours, theirs])
    ids = {
        email.message_from_bytes(path.read_bytes())["Message-ID"] for path in tmp_path.glob("*.eml")
    }
    assert "<kept@example.net>" in ids
    assert any(value.endswith("@mail.example.org>") for value in ids)
