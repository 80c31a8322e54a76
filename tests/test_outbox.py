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
