"""The embedded default's email backend: each message becomes one .eml file.

Files are RFC 5322 messages (what a mail client opens), written atomically to
EMAIL_FILE_PATH (var/outbox/ by default), named so they sort by time.
"""

import uuid
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class OutboxEmailBackend(BaseEmailBackend):
    def __init__(self, *, file_path: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.directory = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            self.write(message.message().as_bytes(linesep="\r\n"))
        return len(email_messages)

    def write(self, data: bytes) -> Path:
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
        return path
