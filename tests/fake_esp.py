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
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

FAULTS = ("429", "500", "timeout", "drop")
MAILGUN_MAX_RECIPIENTS = 1000
POSTMARK_MAX_BATCH = 500
DEFAULT_TIMEOUT_SECONDS = 3.0

_MAILGUN_PATH = re.compile(r"/v3/([^/]+)/messages/?")
_RECIPIENT_VAR = re.compile(r"%recipient\.([^%]+)%")
# A single `Name <addr>` (display name optionally quoted) is by far the most common form;
# matching it directly avoids email.utils.getaddresses, which is slow for 1,000 recipients.
_NAME_ADDR = re.compile(r'\s*(?:"(?:[^"\\]|\\.)*"|[^",<>()]*)\s*<([^<>",\s]+)>\s*')
_ADDRESS_SPECIALS = re.compile(r'[<,"(]')
_MALFORMED_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_MULTIPART_NAME = re.compile(rb'(?:^|[;\s])name="([^"]*)"', re.IGNORECASE)


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

    __slots__ = ("body", "drop", "status")

    def __init__(self, status: int, body: Any = None, *, drop: bool = False) -> None:
        self.status = status
        self.body = body
        self.drop = drop


class _BadRequest(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


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
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.record_bodies = record_bodies
        self.mailgun_api_key = mailgun_api_key
        self.postmark_token = postmark_token
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
            if method == "POST":
                match = _MAILGUN_PATH.fullmatch(path)
                if match:
                    return self.handle_mailgun(unquote(match.group(1)), headers, body)
                if path in ("/email", "/email/batch"):
                    return self.handle_postmark(path == "/email/batch", headers, body)
            if path.startswith("/v3/"):
                return _Reply(404, {"message": "Not Found"})
            return _Reply(404, {"ErrorCode": 404, "Message": f"Not found: {method} {path}"})
        except _BadRequest as error:
            return _Reply(error.status, error.body)

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

    # --- Control API ---------------------------------------------------------------------

    def handle_control(self, method: str, path: str, body: bytes) -> _Reply:
        if method == "GET" and path == "/_fake/stats":
            return _Reply(200, self.stats())
        if method == "GET" and path == "/_fake/count":
            # What /_fake/stats says without the duplicate count: cheap enough to poll
            # every second during a million-recipient benchmark.
            with self._lock:
                return _Reply(200, {"calls": self.calls, "accepted": len(self.accepted)})
        if method == "GET" and path == "/_fake/recipients":
            return _Reply(200, self.recipients())
        if method == "GET" and path == "/_fake/accepted":
            with self._lock:
                return _Reply(200, [asdict(entry) for entry in self.accepted])
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
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
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
