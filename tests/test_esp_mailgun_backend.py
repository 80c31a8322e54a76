"""The Mailgun backend used for batches sends exactly what Anymail's own would."""

from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

import pytest
import requests
from anymail.exceptions import AnymailInvalidAddress
from anymail.message import AnymailMessage
from django.core.mail import get_connection

from newsletter.esp import mailgun_backend

ADDRESSES = [
    "reader1@example.com",
    "first.last+news@mail.example.org",
    "o'brien@example.co.uk",
    "UPPER@Example.COM",
    '"quoted local"@example.com',
    "Named Reader <named@example.com>",
    "josé@example.com",
]


def request_fields(backend_path, message):
    """The request's fields as (name, value) pairs, however they are encoded."""
    backend = get_connection(
        backend_path, api_key="key", sender_domain="mg.example.org", api_url="http://esp.test/v3"
    )
    payload = backend.build_message_payload(message, backend.send_defaults)
    params = payload.get_request_params(backend.api_url)
    prepared = requests.Request(
        method=params["method"], url=params["url"], data=params["data"], files=params["files"],
        headers=params["headers"], auth=params["auth"],
    ).prepare()  # fmt: skip
    kind = prepared.headers["Content-Type"]
    if kind.startswith("multipart/form-data"):
        parsed = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {kind}\r\n\r\n".encode() + prepared.body
        )
        fields = [
            (
                part.get_param("name", header="content-disposition"),
                part.get_payload(decode=True).decode("utf-8"),
            )
            for part in parsed.iter_parts()
        ]
    else:
        fields = parse_qsl(prepared.body, keep_blank_values=True)
    return kind, fields, payload


def batch_message():
    message = AnymailMessage(
        subject="Subject: %recipient.salutation% & more",
        body="Text %recipient.unsubscribe_url%",
        from_email="Advances <news@example.org>",
        to=ADDRESSES,
        headers={"List-Unsubscribe": "<%recipient.unsubscribe_url%>", "List-Id": "A <a.b>"},
        metadata={"issue": "7"},
    )
    message.attach_alternative("<p>Hello %recipient.salutation% ünïcode</p>", "text/html")
    message.merge_data = {a: {"salutation": f"Hello {n},", "unsubscribe_url": f"https://x/{n}/"}
                          for n, a in enumerate(ADDRESSES)}  # fmt: skip
    message.merge_metadata = {a: {"delivery": str(n)} for n, a in enumerate(ADDRESSES)}
    return message


def test_the_batch_backend_sends_the_same_fields_as_anymails():
    theirs = request_fields("anymail.backends.mailgun.EmailBackend", batch_message())
    ours = request_fields("newsletter.esp.mailgun_backend.EmailBackend", batch_message())
    assert theirs[0] == "application/x-www-form-urlencoded"
    assert ours[0].startswith("multipart/form-data")
    assert ours[1] == theirs[1]
    assert len([name for name, _ in ours[1] if name == "to"]) == len(ADDRESSES)
    assert ours[2].to_emails == theirs[2].to_emails


@pytest.mark.parametrize("address", ["reader1@example.com", "a.b-c+d@sub.example.org"])
def test_plain_addresses_become_the_same_email_address(address):
    fast = mailgun_backend.address_list([address])[0]
    slow = mailgun_backend.parse_address_list([address])[0]
    assert (fast.addr_spec, fast.display_name, fast.address) == (
        slow.addr_spec, slow.display_name, slow.address,
    )  # fmt: skip


def test_a_bad_address_is_still_refused():
    with pytest.raises(AnymailInvalidAddress):
        mailgun_backend.address_list(["not an address@@example"])
