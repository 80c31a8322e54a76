"""A local fake email service provider for tests and throughput benchmarks.

Run it in-process with ``FakeESP`` or as a separate process with
``python -m tests.fake_esp --port 8025 [--no-bodies]``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

FAULTS = ("429", "500", "timeout", "drop")
MAILGUN_MAX_RECIPIENTS = 1000
POSTMARK_MAX_BATCH = 500
SENDGRID_MAX_PERSONALIZATIONS = 1000
BREVO_MAX_VERSIONS = 1000
MAILJET_MAX_MESSAGES = 50
UNISENDER_GO_MAX_RECIPIENTS = 500
RESEND_MAX_BATCH = 100
SES_MAX_BULK_ENTRIES = 50
DEFAULT_TIMEOUT_SECONDS = 3.0

_MAILGUN_PATH = re.compile(r"/v3/([^/]+)/messages/?")
_RECIPIENT_VAR = re.compile(r"%recipient\.([^%]+)%")
# A single `Name <addr>` (display name optionally quoted) is by far the most common form;
# matching it directly avoids email.utils.getaddresses, which is slow for 1,000 recipients.
_NAME_ADDR = re.compile(r'\s*(?:"(?:[^"\\]|\\.)*"|[^",<>()]*)\s*<([^<>",\s]+)>\s*')
_ADDRESS_SPECIALS = re.compile(r'[<,"(]')
_MALFORMED_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_MULTIPART_NAME = re.compile(rb'(?:^|[;\s])name="([^"]*)"', re.IGNORECASE)
# Placeholders: {{name}} / {{{name}}} (SparkPost, Unisender Go, Postmark's Mustachio, SES's
# Handlebars), {{ params.name }} (Brevo), {{var:name}} (Mailjet).
_MUSTACHE = re.compile(r"\{\{\{?\s*([\w-]+)\s*\}?\}\}")
_BREVO = re.compile(r"\{\{\s*params\.([\w-]+)\s*\}\}")
_MAILJET = re.compile(r"\{\{var:([\w-]+)\}\}")
_POSTMARK_NO_TEMPLATE = {
    "ErrorCode": 1101,
    "Message": "The template's 'Alias' associated with this request is not valid or was not found.",
}


@dataclass(slots=True)
class Accepted:
    """One recipient of one accepted API call, as the ESP would deliver it."""

    esp: str
    to: str
    subject: str
    headers: dict[str, str]
    metadata: dict[str, str]
    message_id: str
    text: str | None
    html: str | None
    tracking: dict[str, str] = field(default_factory=dict)
    # When the call was answered (time.time(), this process's clock): a benchmark in
    # another process on the same machine measures how long a message took to get here.
    accepted_at: float = 0.0


class _Template:
    """A string with ``%recipient.KEY%`` placeholders, split once so that filling it for
    each of 1,000 recipients is a join rather than a regex scan of the whole string."""

    __slots__ = ("only_key", "parts", "static")

    def __init__(self, source: str) -> None:
        # re.split with one group alternates literal text (even) and keys (odd).
        self.parts = _RECIPIENT_VAR.split(source) if "%recipient." in source else [source]
        self.static = len(self.parts) == 1
        # Anymail's merge_headers and merge_metadata are each one bare placeholder.
        self.only_key = self.parts[1] if self.parts[::2] == ["", ""] else None

    def fill(self, variables: dict[str, Any]) -> str:
        """Fill from one recipient's variables, which are JSON values, usually strings."""
        if self.static:
            return self.parts[0]
        if self.only_key is not None:
            return _as_text(variables.get(self.only_key, ""))
        parts = self.parts
        return "".join(
            part if i % 2 == 0 else _as_text(variables.get(part, ""))
            for i, part in enumerate(parts)
        )


class _Reply:
    """What a handler decided to answer; ``None`` body with ``drop`` closes the socket."""

    __slots__ = ("body", "content_type", "drop", "headers", "status")

    def __init__(
        self,
        status: int,
        body: Any = None,
        *,
        drop: bool = False,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.status = status
        self.body = body
        self.drop = drop
        self.headers = headers or {}
        self.content_type = content_type


class _BadRequest(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


# Where each ESP's API lives on the fake (the path its real base URL has, or a prefix
# that keeps ESPs whose paths would clash apart).
API_PREFIXES = {
    "mailgun": "/v3",
    "postmark": "/",
    "amazon_ses": "",
    "sendgrid": "/sendgrid/v3/",
    "sparkpost": "/sparkpost/api/v1/",
    "brevo": "/brevo/v3/",
    "mailjet": "/mailjet/v3.1/",
    "unisender_go": "/unisender_go/",
    "resend": "/resend/",
    "mandrill": "/mandrill/api/1.0/",
    "mailersend": "/mailersend/v1/",
}


def anymail_environment(esp: str, url: str) -> dict[str, str]:
    """The environment an operator sets for this ESP (`ESP` and Anymail's settings under
    their own names), pointed at a fake ESP at `url` with its default credentials."""
    api_url = url + API_PREFIXES[esp]
    key = "test-key"
    env = {
        "mailgun": {
            "MAILGUN_API_KEY": key,
            "MAILGUN_SENDER_DOMAIN": "mg.example.org",
            "MAILGUN_API_URL": api_url,
        },
        "postmark": {"POSTMARK_SERVER_TOKEN": "test-token", "POSTMARK_API_URL": api_url},
        "amazon_ses": {
            "AMAZON_SES_CLIENT_PARAMS": json.dumps(
                {
                    "endpoint_url": api_url,
                    "region_name": "us-east-1",
                    "aws_access_key_id": "test-access-key",
                    "aws_secret_access_key": "test-secret-key",
                }
            )
        },
        "mailjet": {
            "MAILJET_API_KEY": key,
            "MAILJET_SECRET_KEY": "test-secret",
            "MAILJET_API_URL": api_url,
        },
        "mailersend": {"MAILERSEND_API_TOKEN": key, "MAILERSEND_API_URL": api_url},
    }.get(esp) or {f"{esp.upper()}_API_KEY": key, f"{esp.upper()}_API_URL": api_url}
    return {"ESP": esp, **env}


class FakeESP:
    """A fake of the Mailgun and Postmark send APIs, enough for Anymail's real backends.

    Mailgun: ``POST /v3/<domain>/messages`` (form-urlencoded or multipart) with basic auth
    ``api:<key>``; batch sends of up to 1,000 ``to`` recipients with ``recipient-variables``
    are expanded into one ``Accepted`` per recipient, with ``%recipient.KEY%`` filled in the
    subject, bodies, ``h:`` headers and ``v:`` variables (a missing key becomes "").

    Postmark: ``POST /email`` and ``POST /email/batch`` (up to 500) with the
    ``X-Postmark-Server-Token`` header. A ``To`` address whose local part starts with
    ``invalid`` is refused with ErrorCode 300, as Postmark refuses a bad address.

    Faults ("429", "500", "timeout", "drop") can be queued with ``fail_next`` or drawn at a
    seeded rate with ``set_fault_rate``; ``delay`` slows every answer. A small control API
    under ``/_fake/`` lets another process read the results.

    Limits: only ``to`` recipients are recorded (cc and bcc are accepted but not recorded);
    attachments are skipped; no stored templates (Mailgun's ``template`` is taken in place
    of a body but not rendered; Postmark's ``/email/withTemplate``,
    ``/email/batchWithTemplates`` and ``/email/bulk`` answer 404);
    no Postmark 50-recipient limit, inactive recipients or message streams checks; Mailgun
    addresses are not validated; no webhooks are ever sent.
    """

    def __init__(
        self,
        *,
        record_bodies: bool = True,
        mailgun_api_key: str = "test-key",
        postmark_token: str = "test-token",  # noqa: S107 - a fake credential for tests
        api_key: str = "test-key",
        secret_key: str = "test-secret",  # noqa: S107 - a fake credential for tests
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.record_bodies = record_bodies
        self.mailgun_api_key = mailgun_api_key
        self.postmark_token = postmark_token
        # The other ESPs' credential (Bearer token, api-key, X-API-KEY, Mailjet's basic
        # auth with `secret_key`, Mandrill's key in the body).
        self.api_key = api_key
        self.secret_key = secret_key
        self.template_calls = 0
        self.connections = 0  # TCP connections accepted (keep-alive reuses one)
        self.postmark_templates: dict[str, dict[str, Any]] = {}
        self.ses_templates: dict[str, dict[str, str]] = {}
        self.host = host
        self.port = port
        self.accepted: list[Accepted] = []
        self.calls = 0
        self.accepted_calls = 0
        self.delay = 0.0
        self.timeout_seconds = DEFAULT_TIMEOUT_SECONDS
        self._lock = threading.Lock()
        self._fail_next: deque[str] = deque()
        self._fault_rate = 0.0
        self._fault_choices: list[str] = []
        self._rng = random.Random(0)  # noqa: S311 - reproducible faults, not security
        # Set on stop() so that handlers sleeping for a delay or a timeout fault wake up.
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- Lifecycle -----------------------------------------------------------------------

    @property
    def mailgun_api_url(self) -> str:
        return f"{self.url}/v3"

    @property
    def postmark_api_url(self) -> str:
        return f"{self.url}/"

    def api_url(self, esp: str) -> str:
        """The API URL to give Anymail's backend for this ESP (`<ESP>_API_URL`); for
        Amazon SES, the boto3 `endpoint_url`."""
        return self.url + API_PREFIXES[esp]

    def start(self) -> FakeESP:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.esp = self
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        # Keep-alive connections would otherwise go on being served after stop().
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeESP:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- Records -------------------------------------------------------------------------

    def connections_seen(self) -> int:
        with self._lock:
            return self.connections

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def recipients(self) -> list[str]:
        with self._lock:
            return [entry.to for entry in self.accepted]

    def stats(self) -> dict[str, int]:
        with self._lock:
            accepted = len(self.accepted)
            unique = len({entry.to for entry in self.accepted})
            return {
                "calls": self.calls,
                "accepted_calls": self.accepted_calls,
                "template_calls": self.template_calls,
                "accepted": accepted,
                "unique_recipients": unique,
                "duplicates": accepted - unique,
            }

    def reset(self) -> None:
        """Forget everything sent and every fault, including ``delay`` and
        ``timeout_seconds``: the fake is as good as freshly started."""
        with self._lock:
            self.accepted.clear()
            self.calls = 0
            self.accepted_calls = 0
            self.template_calls = 0
            self.connections = 0
            self.postmark_templates.clear()
            self.ses_templates.clear()
            self._fail_next.clear()
            self._fault_rate = 0.0
            self._fault_choices = []
            self.delay = 0.0
            self.timeout_seconds = DEFAULT_TIMEOUT_SECONDS

    # --- Faults --------------------------------------------------------------------------

    def fail_next(self, count: int, fault: str) -> None:
        _check_faults([fault])
        with self._lock:
            self._fail_next.extend([fault] * count)

    def set_fault_rate(self, rate: float, faults: list[str], seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, not {rate!r}")
        if rate and not faults:
            raise ValueError("a fault rate needs at least one fault")
        _check_faults(faults)
        with self._lock:
            self._fault_rate = rate
            self._fault_choices = list(faults)
            self._rng = random.Random(seed)  # noqa: S311 - reproducible faults

    def _begin_call(self) -> str | None:
        """Count a call and pick its fault; queued faults come before the drawn ones and
        do not consume the random sequence."""
        with self._lock:
            self.calls += 1
            if self._fail_next:
                return self._fail_next.popleft()
            if self._fault_rate and self._rng.random() < self._fault_rate:
                return self._rng.choice(self._fault_choices)
            return None

    def _record(self, entries: list[Accepted]) -> None:
        """Count a call answered with 200 and keep its recipients. (A Postmark batch
        whose every message was refused still counts: it was answered 200.)"""
        now = time.time()
        for entry in entries:
            entry.accepted_at = now
        # One lock for the whole call keeps a call's recipients together in `accepted`.
        with self._lock:
            self.accepted_calls += 1
            self.accepted.extend(entries)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    # --- Dispatch ------------------------------------------------------------------------

    def handle_api(self, method: str, path: str, headers: Message[str, str], body: bytes) -> _Reply:
        fault = self._begin_call()
        self._sleep(self.delay)
        if fault is not None:
            return self._fault_reply(fault)
        try:
            if path.startswith("/v2/email/"):
                return self.handle_ses(method, path, headers, body)
            if path == "/templates" or path.startswith("/templates/"):
                return self.handle_postmark_templates(method, path, headers, body)
            if method == "POST":
                match = _MAILGUN_PATH.fullmatch(path)
                if match:
                    return self.handle_mailgun(unquote(match.group(1)), headers, body)
                if path in ("/email", "/email/batch"):
                    return self.handle_postmark(path == "/email/batch", headers, body)
                if path == "/email/batchWithTemplates":
                    return self.handle_postmark_with_templates(headers, body)
                handler = self._post_handlers().get(path)
                if handler is not None:
                    return handler(headers, body)
            if path.startswith("/v3/"):
                return _Reply(404, {"message": "Not Found"})
            return _Reply(404, {"ErrorCode": 404, "Message": f"Not found: {method} {path}"})
        except _BadRequest as error:
            return _Reply(error.status, error.body)

    def _post_handlers(self) -> dict[str, Any]:
        """POST paths of the ESPs reached through a path prefix of their own
        (`sendgrid_api_url` and the like)."""
        return {
            "/sendgrid/v3/mail/send": self.handle_sendgrid,
            "/sparkpost/api/v1/transmissions/": self.handle_sparkpost,
            "/brevo/v3/smtp/email": self.handle_brevo,
            "/mailjet/v3.1/send": self.handle_mailjet,
            "/unisender_go/email/send.json": self.handle_unisender_go,
            "/resend/emails": lambda h, b: self.handle_resend(False, h, b),
            "/resend/emails/batch": lambda h, b: self.handle_resend(True, h, b),
            "/mandrill/api/1.0/messages/send.json": lambda h, b: self.handle_mandrill(b),
            "/mailersend/v1/email": self.handle_mailersend,
        }

    def _fault_reply(self, fault: str) -> _Reply:
        if fault == "429":
            return _Reply(429, {"message": "Too many requests", "ErrorCode": 429})
        if fault == "500":
            return _Reply(500, {"message": "Internal server error", "ErrorCode": 500})
        if fault == "timeout":
            self._sleep(self.timeout_seconds)
            return _Reply(500, {"message": "Timed out", "ErrorCode": 500})
        return _Reply(0, drop=True)

    # --- Mailgun -------------------------------------------------------------------------

    def handle_mailgun(self, domain: str, headers: Message[str, str], body: bytes) -> _Reply:
        if not _basic_auth_ok(headers.get("Authorization"), "api", self.mailgun_api_key):
            return _Reply(401, {"message": "Invalid private key"})
        fields = _parse_form(headers.get("Content-Type", ""), body)

        single: dict[str, str] = {}
        to_fields: list[str] = []
        for name, value in fields:
            if name == "to":
                to_fields.append(value)
            else:
                single[name] = value  # only `to` needs every value; o:tag may repeat too
        if "from" not in single:
            return _Reply(400, {"message": "'from' parameter is missing"})
        recipients = [addr for value in to_fields for addr in _addresses(value)]
        if not recipients:
            return _Reply(400, {"message": "'to' parameter is missing"})
        if len(recipients) > MAILGUN_MAX_RECIPIENTS:
            return _Reply(
                400,
                {"message": f"Too many recipients; the maximum is {MAILGUN_MAX_RECIPIENTS}"},
            )
        if not ({"text", "html", "template", "amp-html"} & single.keys()):
            return _Reply(
                400,
                {"message": "Need at least one of 'text', 'html' or 'template' parameters"},
            )
        try:
            raw_variables = json.loads(single.get("recipient-variables") or "{}")
        except ValueError:
            return _Reply(400, {"message": "recipient-variables: invalid JSON"})
        if not isinstance(raw_variables, dict):
            return _Reply(400, {"message": "recipient-variables must be a JSON object"})
        variables: dict[str, dict[str, Any]] = {
            address.lower(): values
            for address, values in raw_variables.items()
            if isinstance(values, dict)
        }

        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        message_id = f"<{stamp}.{uuid.uuid4().hex[:16]}@{domain}>"
        subject = _Template(single.get("subject", ""))
        header_templates = {
            name[2:]: _Template(value) for name, value in single.items() if name[:2] == "h:"
        }
        metadata_templates = {
            name[2:]: _Template(value) for name, value in single.items() if name[:2] == "v:"
        }
        tracking = {name: value for name, value in single.items() if name.startswith("o:tracking")}
        text = html = None
        if self.record_bodies:
            text = _Template(single["text"]) if "text" in single else None
            html = _Template(single["html"]) if "html" in single else None

        no_variables: dict[str, Any] = {}
        entries = []
        for address in recipients:
            values = variables.get(address, no_variables)
            entries.append(
                Accepted(
                    esp="mailgun",
                    to=address,
                    subject=subject.fill(values),
                    headers={name: t.fill(values) for name, t in header_templates.items()},
                    metadata={name: t.fill(values) for name, t in metadata_templates.items()},
                    message_id=message_id,
                    text=text.fill(values) if text is not None else None,
                    html=html.fill(values) if html is not None else None,
                    tracking=dict(tracking),
                )
            )
        self._record(entries)
        return _Reply(200, {"id": message_id, "message": "Queued. Thank you."})

    # --- Postmark ------------------------------------------------------------------------

    def handle_postmark(self, batch: bool, headers: Message[str, str], body: bytes) -> _Reply:
        if headers.get("X-Postmark-Server-Token") != self.postmark_token:
            return _Reply(
                401,
                {
                    "ErrorCode": 10,
                    "Message": "Request does not contain a valid Server token.",
                },
            )
        try:
            data = json.loads(body)
        except ValueError:
            return _Reply(422, {"ErrorCode": 402, "Message": "Received invalid JSON input."})
        if batch:
            if not isinstance(data, list):
                return _Reply(422, {"ErrorCode": 402, "Message": "Expected a JSON array."})
            if len(data) > POSTMARK_MAX_BATCH:
                return _Reply(
                    422,
                    {
                        "ErrorCode": 300,
                        "Message": f"Batch of {len(data)} messages exceeds the maximum of "
                        f"{POSTMARK_MAX_BATCH}.",
                    },
                )
        elif not isinstance(data, dict):
            return _Reply(422, {"ErrorCode": 402, "Message": "Expected a JSON object."})

        entries: list[Accepted] = []
        results = []
        for message in data if batch else [data]:
            result, accepted = self._postmark_message(message)
            results.append(result)
            entries.extend(accepted)
        if batch:
            self._record(entries)
            return _Reply(200, results)
        if results[0]["ErrorCode"] != 0:
            return _Reply(422, results[0])
        self._record(entries)
        return _Reply(200, results[0])

    def _postmark_message(self, message: Any) -> tuple[dict[str, Any], list[Accepted]]:
        if not isinstance(message, dict):
            return {"ErrorCode": 402, "Message": "Expected a JSON object."}, []
        if not message.get("From"):
            return {"ErrorCode": 300, "Message": "Invalid 'From' address: ''."}, []
        to_header = message.get("To") or ""
        recipients = _addresses(str(to_header))
        if not recipients:
            return {"ErrorCode": 300, "Message": "Zero recipients specified"}, []
        invalid = [addr for addr in recipients if addr.startswith("invalid")]
        if invalid:
            return {
                "ErrorCode": 300,
                "Message": f"Invalid 'To' address: '{', '.join(invalid)}'.",
                "To": to_header,
            }, []

        if not isinstance(message.get("Metadata") or {}, dict) or not isinstance(
            message.get("Headers") or [], list
        ):
            return {"ErrorCode": 300, "Message": "Invalid 'Metadata' or 'Headers'."}, []
        message_id = str(uuid.uuid4())
        headers = {
            str(item.get("Name")): _as_text(item.get("Value"))
            for item in message.get("Headers") or []
            if isinstance(item, dict)
        }
        metadata = {
            str(key): _as_text(value) for key, value in (message.get("Metadata") or {}).items()
        }
        tracking = {
            key: _as_text(message[key]) for key in ("TrackOpens", "TrackLinks") if key in message
        }
        text = message.get("TextBody") if self.record_bodies else None
        html = message.get("HtmlBody") if self.record_bodies else None
        accepted = [
            Accepted(
                esp="postmark",
                to=address,
                subject=str(message.get("Subject") or ""),
                headers=dict(headers),
                metadata=dict(metadata),
                message_id=message_id,
                text=text,
                html=html,
                tracking=dict(tracking),
            )
            for address in recipients
        ]
        result = {
            "To": to_header,
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }
        return result, accepted

    # --- The other ESPs' APIs ------------------------------------------------------------
    # Each fills its own placeholder syntax per recipient and enforces its own per-call
    # limit, answering an oversize call as the ESP does (an error, nothing sent).

    def _json_body(self, body: bytes, status: int = 400, error: Any = None) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            raise _BadRequest(status, error or {"message": "invalid JSON"}) from None

    def _bearer_ok(self, headers: Message[str, str]) -> bool:
        return headers.get("Authorization") == f"Bearer {self.api_key}"

    def _entry(
        self,
        esp: str,
        to: str,
        *,
        subject: str,
        headers: dict[str, str],
        metadata: dict[str, Any] | None = None,
        message_id: str | None = None,
        text: str | None = None,
        html: str | None = None,
    ) -> Accepted:
        return Accepted(
            esp=esp,
            to=to.lower(),
            subject=subject,
            headers={str(k): _as_text(v) for k, v in headers.items()},
            metadata={str(k): _as_text(v) for k, v in (metadata or {}).items()},
            message_id=message_id or str(uuid.uuid4()),
            text=text if self.record_bodies else None,
            html=html if self.record_bodies else None,
        )

    # SendGrid v3: POST {api}/mail/send, "Bearer <key>"; legacy substitutions replace each
    # key wherever it appears; at most 1,000 personalizations.
    def handle_sendgrid(self, headers: Message[str, str], body: bytes) -> _Reply:
        if not self._bearer_ok(headers):
            return _Reply(
                401, {"errors": [{"message": "The provided authorization grant is invalid"}]}
            )
        data = self._json_body(body)
        personalizations = data.get("personalizations") or []
        if not personalizations:
            return _Reply(400, {"errors": [{"field": "personalizations", "message": "required"}]})
        if len(personalizations) > SENDGRID_MAX_PERSONALIZATIONS:
            return _Reply(
                400,
                {
                    "errors": [
                        {
                            "field": "personalizations",
                            "message": "The personalizations field must have at most "
                            f"{SENDGRID_MAX_PERSONALIZATIONS} items.",
                        }
                    ]
                },
            )
        content = {part["type"]: part["value"] for part in data.get("content") or []}
        entries = []
        for personalization in personalizations:
            substitutions = personalization.get("substitutions") or {}

            def fill(text: str, subs: dict[str, Any] = substitutions) -> str:
                for key, value in subs.items():
                    text = text.replace(key, _as_text(value))
                return text

            merged_headers = {
                **(data.get("headers") or {}),
                **(personalization.get("headers") or {}),
            }
            metadata = {
                **(data.get("custom_args") or {}),
                **(personalization.get("custom_args") or {}),
            }
            for to in personalization.get("to") or []:
                entries.append(
                    self._entry(
                        "sendgrid",
                        to["email"],
                        subject=fill(personalization.get("subject") or data.get("subject", "")),
                        headers={k: fill(v) for k, v in merged_headers.items()},
                        metadata=metadata,
                        message_id=metadata.get("anymail_id"),
                        text=fill(content["text/plain"]) if "text/plain" in content else None,
                        html=fill(content["text/html"]) if "text/html" in content else None,
                    )
                )
        self._record(entries)
        return _Reply(202, None)

    # SparkPost: POST {api}/transmissions/, "Authorization: <key>"; {{name}} and
    # {{{name}}} from each recipient's substitution_data over the global one.
    def handle_sparkpost(self, headers: Message[str, str], body: bytes) -> _Reply:
        if headers.get("Authorization") != self.api_key:
            return _Reply(401, {"errors": [{"message": "Unauthorized."}]})
        data = self._json_body(body)
        recipients = data.get("recipients") or []
        content = data.get("content") or {}
        if not recipients or not content.get("from"):
            return _Reply(
                422, {"errors": [{"message": "recipients and content.from are required"}]}
            )
        transmission_id = str(self._rng.getrandbits(60))
        entries = []
        for recipient in recipients:
            values = {
                **(data.get("substitution_data") or {}),
                **(recipient.get("substitution_data") or {}),
            }
            address = recipient["address"]
            entries.append(
                self._entry(
                    "sparkpost",
                    address["email"] if isinstance(address, dict) else address,
                    subject=_fill(_MUSTACHE, content.get("subject", ""), values),
                    headers={
                        k: _fill(_MUSTACHE, v, values)
                        for k, v in (content.get("headers") or {}).items()
                    },
                    metadata={**(data.get("metadata") or {}), **(recipient.get("metadata") or {})},
                    message_id=transmission_id,
                    text=_fill(_MUSTACHE, content["text"], values) if "text" in content else None,
                    html=_fill(_MUSTACHE, content["html"], values) if "html" in content else None,
                )
            )
        self._record(entries)
        return _Reply(
            200,
            {
                "results": {
                    "total_rejected_recipients": 0,
                    "total_accepted_recipients": len(entries),
                    "id": transmission_id,
                }
            },
        )

    # Brevo: POST {api}/smtp/email, "api-key: <key>"; {{ params.name }}; at most 1,000
    # messageVersions.
    def handle_brevo(self, headers: Message[str, str], body: bytes) -> _Reply:
        if headers.get("api-key") != self.api_key:
            return _Reply(401, {"code": "unauthorized", "message": "Key not found"})
        data = self._json_body(body)
        versions = data.get("messageVersions")
        if versions is not None and len(versions) > BREVO_MAX_VERSIONS:
            return _Reply(
                400,
                {
                    "code": "invalid_parameter",
                    "message": f"messageVersions: at most {BREVO_MAX_VERSIONS}",
                },
            )
        if versions is None:
            versions = [{"to": data.get("to") or []}]
        entries, message_ids = [], []
        for version in versions:
            values = {**(data.get("params") or {}), **(version.get("params") or {})}
            version_headers = {**(data.get("headers") or {}), **(version.get("headers") or {})}
            custom = version_headers.get("X-Mailin-custom")
            message_id = f"<{uuid.uuid4().hex}@smtp-relay.mailin.fr>"
            message_ids.append(message_id)
            for to in version.get("to") or []:
                entries.append(
                    self._entry(
                        "brevo",
                        to["email"],
                        subject=_fill(
                            _BREVO, version.get("subject") or data.get("subject", ""), values
                        ),
                        headers=version_headers,
                        metadata=json.loads(custom) if custom else {},
                        message_id=message_id,
                        text=_fill(_BREVO, data["textContent"], values)
                        if "textContent" in data
                        else None,
                        html=_fill(_BREVO, data["htmlContent"], values)
                        if "htmlContent" in data
                        else None,
                    )
                )
        if not entries:
            return _Reply(400, {"code": "missing_parameter", "message": "to is missing"})
        self._record(entries)
        if "messageVersions" in data:
            return _Reply(201, {"messageIds": message_ids})
        return _Reply(201, {"messageId": message_ids[0]})

    # Mailjet Send API v3.1: POST {api}/send, basic auth; {{var:name}} with
    # TemplateLanguage; at most 50 messages per call.
    def handle_mailjet(self, headers: Message[str, str], body: bytes) -> _Reply:
        if not _basic_auth_ok(headers.get("Authorization"), self.api_key, self.secret_key):
            return _Reply(401, {"ErrorMessage": "API key authentication/authorization failure"})
        data = self._json_body(body)
        messages = data.get("Messages") or []
        if len(messages) > MAILJET_MAX_MESSAGES:
            return _Reply(
                400,
                {
                    "ErrorIdentifier": str(uuid.uuid4()),
                    "StatusCode": 400,
                    "ErrorCode": "mj-0002",
                    "ErrorMessage": f"Messages: at most {MAILJET_MAX_MESSAGES} messages per call",
                },
            )
        globals_ = data.get("Globals") or {}
        entries, results = [], []
        for message in messages:
            merged = {**globals_, **message}
            templating = bool(merged.get("TemplateLanguage"))
            values = {**(globals_.get("Variables") or {}), **(message.get("Variables") or {})}

            def fill(text: str, values: dict[str, Any] = values, on: bool = templating) -> str:
                return _fill(_MAILJET, text, values) if on else text

            payload = merged.get("EventPayload")
            message_headers = {**(globals_.get("Headers") or {}), **(message.get("Headers") or {})}
            to_results = []
            for to in message.get("To") or []:
                message_id = self._rng.getrandbits(50)
                entries.append(
                    self._entry(
                        "mailjet",
                        to["Email"],
                        subject=fill(merged.get("Subject", "")),
                        # Mailjet merges Headers (as Variables) key by key with Globals'.
                        headers={k: fill(v) for k, v in message_headers.items()},
                        metadata=json.loads(payload) if payload else {},
                        message_id=str(message_id),
                        text=fill(merged["TextPart"]) if "TextPart" in merged else None,
                        html=fill(merged["HTMLPart"]) if "HTMLPart" in merged else None,
                    )
                )
                to_results.append(
                    {
                        "Email": to["Email"],
                        "MessageUUID": str(uuid.uuid4()),
                        "MessageID": message_id,
                        "MessageHref": f"https://api.mailjet.com/v3/REST/message/{message_id}",
                    }
                )
            results.append({"Status": "success", "To": to_results, "Cc": [], "Bcc": []})
        self._record(entries)
        return _Reply(200, {"Messages": results})

    # Unisender Go: POST {api}/email/send.json, "X-API-KEY"; {{name}}; at most 500
    # recipients per call.
    def handle_unisender_go(self, headers: Message[str, str], body: bytes) -> _Reply:
        if headers.get("X-API-KEY") != self.api_key:
            return _Reply(401, {"status": "error", "message": "User not found", "code": 105})
        message = (self._json_body(body) or {}).get("message") or {}
        recipients = message.get("recipients") or []
        if len(recipients) > UNISENDER_GO_MAX_RECIPIENTS:
            return _Reply(
                400,
                {
                    "status": "error",
                    "code": 204,
                    "message": f"recipients: at most {UNISENDER_GO_MAX_RECIPIENTS} per call",
                },
            )
        content = message.get("body") or {}
        job_id = uuid.uuid4().hex[:16]
        entries = []
        for recipient in recipients:
            values = {
                **(message.get("global_substitutions") or {}),
                **(recipient.get("substitutions") or {}),
            }
            metadata = {
                **(message.get("global_metadata") or {}),
                **(recipient.get("metadata") or {}),
            }
            entries.append(
                self._entry(
                    "unisender_go",
                    recipient["email"],
                    subject=_fill(_MUSTACHE, message.get("subject", ""), values),
                    headers={
                        k: _fill(_MUSTACHE, v, values)
                        for k, v in (message.get("headers") or {}).items()
                    },
                    metadata=metadata,
                    message_id=metadata.get("anymail_id", job_id),
                    text=_fill(_MUSTACHE, content["plaintext"], values)
                    if "plaintext" in content
                    else None,
                    html=_fill(_MUSTACHE, content["html"], values) if "html" in content else None,
                )
            )
        self._record(entries)
        return _Reply(
            200,
            {
                "status": "success",
                "job_id": job_id,
                "emails": [e.to for e in entries],
                "failed_emails": {},
            },
        )

    # Resend: POST {api}/emails (one message) or {api}/emails/batch (at most 100), Bearer.
    # No per-recipient merging: each message is sent as given.
    def handle_resend(self, batch: bool, headers: Message[str, str], body: bytes) -> _Reply:
        if not self._bearer_ok(headers):
            return _Reply(
                401,
                {"statusCode": 401, "name": "validation_error", "message": "API key is invalid"},
            )
        data = self._json_body(body)
        messages = data if batch else [data]
        if batch and len(messages) > RESEND_MAX_BATCH:
            return _Reply(
                422,
                {
                    "statusCode": 422,
                    "name": "validation_error",
                    "message": f"Too many emails: the batch maximum is {RESEND_MAX_BATCH}",
                },
            )
        entries, ids = [], []
        for message in messages:
            message_id = str(uuid.uuid4())
            ids.append({"id": message_id})
            message_headers = dict(message.get("headers") or {})
            metadata = json.loads(message_headers.get("X-Metadata", "{}"))
            for to in message.get("to") or []:
                entries.append(
                    self._entry(
                        "resend",
                        _addresses(to)[0],
                        subject=message.get("subject", ""),
                        headers=message_headers,
                        metadata=metadata,
                        message_id=message_id,
                        text=message.get("text"),
                        html=message.get("html"),
                    )
                )
        self._record(entries)
        return _Reply(200, {"data": ids} if batch else ids[0])

    # Mandrill: POST {api}/messages/send.json with the key in the body.
    def handle_mandrill(self, body: bytes) -> _Reply:
        data = self._json_body(body, 500, {"status": "error", "name": "ValidationError"})
        if data.get("key") != self.api_key:
            return _Reply(
                500,
                {
                    "status": "error",
                    "code": -1,
                    "name": "Invalid_Key",
                    "message": "Invalid API key",
                },
            )
        message = data.get("message") or {}
        entries, results = [], []
        for to in message.get("to") or []:
            message_id = uuid.uuid4().hex
            entries.append(
                self._entry(
                    "mandrill",
                    to["email"],
                    subject=message.get("subject", ""),
                    headers=message.get("headers") or {},
                    metadata=message.get("metadata"),
                    message_id=message_id,
                    text=message.get("text"),
                    html=message.get("html"),
                )
            )
            results.append({"email": to["email"], "status": "sent", "_id": message_id})
        self._record(entries)
        return _Reply(200, results)

    # MailerSend: POST {api}/email, Bearer; 202 with X-Message-Id and no body.
    def handle_mailersend(self, headers: Message[str, str], body: bytes) -> _Reply:
        if not self._bearer_ok(headers):
            return _Reply(401, {"message": "Unauthenticated."})
        data = self._json_body(body, 422, {"message": "invalid JSON"})
        message_id = uuid.uuid4().hex[:24]
        message_headers = {h["name"]: h["value"] for h in data.get("headers") or []}
        entries = [
            self._entry(
                "mailersend",
                to["email"],
                subject=data.get("subject", ""),
                headers=message_headers,
                message_id=message_id,
                text=data.get("text"),
                html=data.get("html"),
            )
            for to in data.get("to") or []
        ]
        self._record(entries)
        return _Reply(202, None, headers={"X-Message-Id": message_id}, content_type="text/plain")

    # Postmark stored templates: PUT/POST/GET /templates, and email/batchWithTemplates
    # (at most 500) rendering them with each message's TemplateModel.
    def handle_postmark_templates(
        self, method: str, path: str, headers: Message[str, str], body: bytes
    ) -> _Reply:
        if headers.get("X-Postmark-Server-Token") != self.postmark_token:
            return _Reply(
                401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}
            )
        alias = path[len("/templates/") :] if path.startswith("/templates/") else ""
        with self._lock:
            self.template_calls += 1
            if method == "GET" and alias:
                template = self.postmark_templates.get(alias)
                if template is None:
                    return _Reply(422, _POSTMARK_NO_TEMPLATE)
                return _Reply(200, template)
            data = self._json_body(
                body, 422, {"ErrorCode": 402, "Message": "Received invalid JSON input."}
            )
            if method == "PUT" and alias:
                if alias not in self.postmark_templates:
                    return _Reply(422, _POSTMARK_NO_TEMPLATE)
                self.postmark_templates[alias].update(
                    {k: data[k] for k in ("Name", "Subject", "HtmlBody", "TextBody") if k in data}
                )
                return _Reply(
                    200,
                    {
                        "TemplateId": self.postmark_templates[alias]["TemplateId"],
                        "Name": data.get("Name"),
                        "Alias": alias,
                        "Active": True,
                    },
                )
            if method == "POST" and not alias:
                alias = data.get("Alias") or ""
                if alias in self.postmark_templates:
                    return _Reply(
                        422, {"ErrorCode": 1105, "Message": "This alias is already in use."}
                    )
                template_id = len(self.postmark_templates) + 1
                self.postmark_templates[alias] = {"TemplateId": template_id, **data}
                return _Reply(
                    200,
                    {
                        "TemplateId": template_id,
                        "Name": data.get("Name"),
                        "Alias": alias,
                        "Active": True,
                    },
                )
        return _Reply(404, {"ErrorCode": 404, "Message": f"Not found: {method} {path}"})

    def handle_postmark_with_templates(self, headers: Message[str, str], body: bytes) -> _Reply:
        if headers.get("X-Postmark-Server-Token") != self.postmark_token:
            return _Reply(
                401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}
            )
        data = self._json_body(
            body, 422, {"ErrorCode": 402, "Message": "Received invalid JSON input."}
        )
        messages = data.get("Messages") if isinstance(data, dict) else None
        if not isinstance(messages, list):
            return _Reply(422, {"ErrorCode": 402, "Message": "Expected a 'Messages' array."})
        if len(messages) > POSTMARK_MAX_BATCH:
            return _Reply(
                422,
                {
                    "ErrorCode": 300,
                    "Message": f"Batch of {len(messages)} messages "
                    f"exceeds the maximum of {POSTMARK_MAX_BATCH}.",
                },
            )
        entries, results = [], []
        for message in messages:
            with self._lock:
                template = self.postmark_templates.get(str(message.get("TemplateAlias") or ""))
            if template is None:
                results.append(_POSTMARK_NO_TEMPLATE)
                continue
            values = message.get("TemplateModel") or {}
            rendered = {
                "Subject": _fill(_MUSTACHE, template.get("Subject") or "", values),
                "TextBody": _fill(_MUSTACHE, template.get("TextBody") or "", values),
                "HtmlBody": _fill(_MUSTACHE, template.get("HtmlBody") or "", values),
            }
            result, accepted = self._postmark_message({**message, **rendered})
            results.append(result)
            entries.extend(accepted)
        self._record(entries)
        return _Reply(200, results)

    # Amazon SES v2 (REST-JSON, as boto3's sesv2 client speaks it): templates,
    # SendBulkEmail (at most 50 entries; each rendered from the stored template with its
    # ReplacementTemplateData) and SendEmail (a raw MIME message).
    def handle_ses(self, method: str, path: str, headers: Message[str, str], body: bytes) -> _Reply:
        if not (headers.get("Authorization") or "").startswith("AWS4-HMAC-SHA256 Credential="):
            return _ses_error(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        data = self._json_body(body) if body else {}
        if path == "/v2/email/templates" and method == "POST":
            return self._ses_store_template(
                data["TemplateName"], data["TemplateContent"], create=True
            )
        if path.startswith("/v2/email/templates/") and method == "PUT":
            name = unquote(path.rsplit("/", 1)[1])
            return self._ses_store_template(name, data["TemplateContent"], create=False)
        if path == "/v2/email/outbound-bulk-emails" and method == "POST":
            return self._ses_send_bulk(data)
        if path == "/v2/email/outbound-emails" and method == "POST":
            return self._ses_send_email(data)
        return _ses_error(404, "NotFoundException", f"Not found: {method} {path}")

    def _ses_store_template(self, name: str, content: dict[str, str], *, create: bool) -> _Reply:
        with self._lock:
            self.template_calls += 1
            exists = name in self.ses_templates
            if create and exists:
                return _ses_error(400, "AlreadyExistsException", f"Template {name} already exists.")
            if not create and not exists:
                return _ses_error(404, "NotFoundException", f"Template {name} does not exist.")
            self.ses_templates[name] = dict(content)
        return _Reply(200, {})

    def _ses_send_bulk(self, data: dict[str, Any]) -> _Reply:
        entries_in = data.get("BulkEmailEntries") or []
        if not entries_in:
            return _ses_error(400, "BadRequestException", "BulkEmailEntries is required")
        if len(entries_in) > SES_MAX_BULK_ENTRIES:
            return _ses_error(
                400,
                "BadRequestException",
                f"BulkEmailEntries: at most {SES_MAX_BULK_ENTRIES} destinations",
            )
        template_spec = (data.get("DefaultContent") or {}).get("Template") or {}
        with self._lock:
            template = self.ses_templates.get(template_spec.get("TemplateName", ""))
        if template is None:
            return _ses_error(404, "NotFoundException", "Template does not exist")
        defaults = json.loads(template_spec.get("TemplateData") or "{}")
        entries, results = [], []
        for entry in entries_in:
            replacement = (entry.get("ReplacementEmailContent") or {}).get(
                "ReplacementTemplate"
            ) or {}
            values = {**defaults, **json.loads(replacement.get("ReplacementTemplateData") or "{}")}
            entry_headers = {h["Name"]: h["Value"] for h in entry.get("ReplacementHeaders") or []}
            message_id = f"{uuid.uuid4().hex}-000000"
            for to in (entry.get("Destination") or {}).get("ToAddresses") or []:
                entries.append(
                    self._entry(
                        "amazon_ses",
                        _addresses(to)[0],
                        subject=_fill(_MUSTACHE, template.get("Subject", ""), values),
                        headers=entry_headers,
                        metadata=json.loads(entry_headers.get("X-Metadata", "{}")),
                        message_id=message_id,
                        text=_fill(_MUSTACHE, template.get("Text", ""), values),
                        html=_fill(_MUSTACHE, template.get("Html", ""), values),
                    )
                )
            results.append({"Status": "SUCCESS", "MessageId": message_id})
        self._record(entries)
        return _Reply(200, {"BulkEmailEntryResults": results})

    def _ses_send_email(self, data: dict[str, Any]) -> _Reply:
        raw = ((data.get("Content") or {}).get("Raw") or {}).get("Data")
        if not raw:
            return _ses_error(400, "BadRequestException", "Only raw content is supported here")
        message = message_from_bytes(base64.b64decode(raw), policy=email_policy.default)
        destination = (data.get("Destination") or {}).get("ToAddresses") or [str(message["To"])]
        parts = {
            part.get_content_type(): part.get_content()
            for part in message.walk()
            if not part.is_multipart()
        }
        skip = {
            "to",
            "from",
            "subject",
            "content-type",
            "mime-version",
            "content-transfer-encoding",
        }
        message_headers = {k: str(v).strip() for k, v in message.items() if k.lower() not in skip}
        message_id = f"{uuid.uuid4().hex}-000000"
        entries = [
            self._entry(
                "amazon_ses",
                address,
                subject=str(message["Subject"] or ""),
                headers=message_headers,
                metadata=json.loads(message_headers.get("X-Metadata", "{}")),
                message_id=message_id,
                text=parts.get("text/plain"),
                html=parts.get("text/html"),
            )
            for value in destination
            for address in _addresses(value)
        ]
        self._record(entries)
        return _Reply(200, {"MessageId": message_id})

    # --- Control API ---------------------------------------------------------------------

    def handle_control(self, method: str, path: str, body: bytes) -> _Reply:
        if method == "GET" and path == "/_fake/stats":
            return _Reply(200, self.stats())
        if method == "GET" and path == "/_fake/recipients":
            return _Reply(200, self.recipients())
        if method == "GET" and path == "/_fake/accepted":
            with self._lock:
                return _Reply(200, [asdict(entry) for entry in self.accepted])
        if method == "GET" and path.startswith("/_fake/accepted/"):
            # One address's messages, so a poller need not fetch a whole large send.
            address = unquote(path.removeprefix("/_fake/accepted/")).lower()
            with self._lock:
                found = [asdict(e) for e in self.accepted if e.to.lower() == address]
            return _Reply(200, found)
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return _Reply(200, {"ok": True})
        if method == "POST" and path == "/_fake/faults":
            try:
                self._configure_faults(json.loads(body or b"{}"))
            except (ValueError, TypeError, KeyError) as error:
                return _Reply(400, {"error": str(error)})
            return _Reply(200, {"ok": True})
        return _Reply(404, {"error": f"Not found: {method} {path}"})

    def _configure_faults(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise TypeError("expected a JSON object")
        if "rate" in spec:
            self.set_fault_rate(
                float(spec["rate"]), list(spec.get("faults", [])), int(spec.get("seed", 0))
            )
        if "fail_next" in spec:
            self.fail_next(int(spec["fail_next"]), str(spec["fault"]))
        if "delay" in spec:
            self.delay = float(spec["delay"])
        if "timeout_seconds" in spec:
            self.timeout_seconds = float(spec["timeout_seconds"])


# --- HTTP plumbing -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A benchmark opens many connections at once; the default backlog of 5 refuses some.
    request_queue_size = 128
    esp: FakeESP

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up are part of the job; anything else is a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeESP/1.0"
    # Headers and body go out in two writes; without this, Nagle's algorithm and delayed
    # ACKs add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True

    @property
    def esp(self) -> FakeESP:
        return cast(_Server, self.server).esp

    def setup(self) -> None:
        super().setup()
        cast(_Server, self.server).track(self.connection, True)
        self.esp._connected()

    def finish(self) -> None:
        cast(_Server, self.server).track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self._reply(_Reply(400, {"message": "Unreadable request body"}))
            self.close_connection = True
            return
        try:
            if path.startswith("/_fake/"):
                reply = self.esp.handle_control(method, path, body)
            else:
                reply = self.esp.handle_api(method, path, self.headers, body)
        except Exception as error:
            # Answer rather than hang up, so a bug here shows up in the client's error.
            reply = _Reply(500, {"message": f"FakeESP error: {error!r}"})
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._reply(reply)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, reply: _Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. its timeout fired)


# --- Parsing helpers -----------------------------------------------------------------------


def _check_faults(faults: Iterable[str]) -> None:
    unknown = [fault for fault in faults if fault not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown!r}; known: {FAULTS!r}")


def _fill(pattern: re.Pattern[str], source: str, values: dict[str, Any]) -> str:
    """A template filled from one recipient's values (a missing name becomes "")."""
    if "{{" not in source:
        return source
    return pattern.sub(lambda match: _as_text(values.get(match.group(1), "")), source)


def _ses_error(status: int, code: str, message: str) -> _Reply:
    # botocore reads the error code from this header, as real SES sends it.
    return _Reply(status, {"message": message}, headers={"x-amzn-ErrorType": code})


def _as_text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value)


def _basic_auth_ok(header: str | None, user: str, password: str) -> bool:
    if not header or header[:6].lower() != "basic ":
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return decoded == f"{user}:{password}"


def _addresses(value: str) -> list[str]:
    """The lower-cased addr-specs in an address-list header value."""
    if not _ADDRESS_SPECIALS.search(value):
        address = value.strip().lower()
        return [address] if address else []
    match = _NAME_ADDR.fullmatch(value)
    if match:
        return [match.group(1).lower()]
    return [address.lower() for _name, address in getaddresses([value]) if address]


def _parse_form(content_type: str, body: bytes) -> list[tuple[str, str]]:
    kind, _, params = content_type.partition(";")
    kind = kind.strip().lower()
    if kind == "multipart/form-data":
        return list(_parse_multipart(params, body))
    if kind in ("application/x-www-form-urlencoded", ""):
        return _parse_urlencoded(body)
    raise _BadRequest(400, {"message": f"Unsupported Content-Type {kind!r}"})


def _parse_urlencoded(body: bytes) -> list[tuple[str, str]]:
    if _MALFORMED_ESCAPE.search(body):
        return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    fields = []
    for pair in body.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            fields.append((_unquote_plus(name), _unquote_plus(value)))
    return fields


def _unquote_plus(value: bytes) -> str:
    """urllib.parse.unquote_plus, but in C: a batch's recipient-variables and html are a
    few hundred KB of %XX escapes, which parse_qsl decodes in pure Python at ~20 ms a call.
    Percent-escapes become quoted-printable ones (after escaping any literal "=") and
    binascii.a2b_qp decodes them; _parse_urlencoded has ruled out stray "%" first, since
    quoted-printable would read "=" + newline as a soft line break."""
    if b"%" not in value and b"+" not in value:
        return value.decode("utf-8", "replace")
    quoted = value.replace(b"=", b"=3D").replace(b"+", b" ").replace(b"%", b"=")
    return binascii.a2b_qp(quoted).decode("utf-8", "replace")


def _parse_multipart(params: str, body: bytes) -> Iterator[tuple[str, str]]:
    """Form fields of a multipart/form-data body; file parts are skipped, since nothing
    is recorded about attachments."""
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise _BadRequest(400, {"message": "multipart body without a boundary"})
    delimiter = b"--" + boundary.encode("latin-1")
    parts = body.split(delimiter)
    for part in parts[1:]:
        if part.startswith(b"--"):
            return  # the closing delimiter
        head, separator, content = part.partition(b"\r\n\r\n")
        if not separator:
            raise _BadRequest(400, {"message": "malformed multipart part"})
        # The CRLF before the next delimiter belongs to the delimiter, not the content.
        if content.endswith(b"\r\n"):
            content = content[:-2]
        disposition = b""
        for line in head.split(b"\r\n"):
            if line[:20].lower() == b"content-disposition:":
                disposition = line[20:]
        if b"filename=" in disposition:
            continue
        name = _MULTIPART_NAME.search(disposition)
        if name is None:
            raise _BadRequest(400, {"message": "multipart part without a name"})
        try:
            yield name.group(1).decode("utf-8"), content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _BadRequest(400, {"message": "multipart field is not UTF-8"}) from error
    raise _BadRequest(400, {"message": "multipart body without a closing delimiter"})


# --- Command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_esp", description="Run a fake Mailgun/Postmark API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--no-bodies", action="store_true", help="do not keep text/html")
    parser.add_argument("--mailgun-api-key", default="test-key")
    parser.add_argument("--postmark-token", default="test-token")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    esp = FakeESP(
        record_bodies=not args.no_bodies,
        mailgun_api_key=args.mailgun_api_key,
        postmark_token=args.postmark_token,
        host=args.host,
        port=args.port,
    ).start()
    print(f"FAKE_ESP_URL={esp.url}", flush=True)
    try:
        # A bounded wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        esp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
