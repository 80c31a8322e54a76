"""The embedded default's email backend: each message becomes one .eml file.

Files are RFC 5322 messages (what a mail client opens), written atomically to
EMAIL_FILE_PATH (var/outbox/ by default), named so they sort by time. Each carries a
Message-ID on the site's own domain (`message_id_domain`), as the ESPs' own would, not
the machine's name ("@localhost").
"""

import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import make_msgid
from django.utils import timezone


def message_id_domain() -> str:
    """The domain of outgoing Message-IDs: MESSAGE_ID_DOMAIN, else SITE_URL's host."""
    return settings.MESSAGE_ID_DOMAIN or urlsplit(settings.SITE_URL).hostname or "localhost"


def with_message_id(message: EmailMessage) -> EmailMessage:
    """Give the message a Message-ID on our domain unless its sender set one."""
    if not any(name.lower() == "message-id" for name in message.extra_headers):
        message.extra_headers["Message-ID"] = make_msgid(domain=message_id_domain())
    return message


class OutboxEmailBackend(BaseEmailBackend):
    def __init__(self, *, file_path: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.directory = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            self.write(with_message_id(message).message().as_bytes(linesep="\r\n"))
        return len(email_messages)

    def write(self, data: bytes) -> Path:
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
        return path
