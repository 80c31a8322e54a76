"""Anymail's Mailgun backend, with two costs of a 1,000-recipient call taken out.

The same fields, in the same order, with the same values as Anymail's own backend
(tests/test_esp_mailgun_backend.py holds it); only two things differ:

- Each `to` address that is a plain `local@domain` (a dot-atom local part, a host name:
  every address the signup form accepts and stores) becomes Anymail's EmailAddress
  from its two parts, instead of going through the RFC 5322 header parser, which took
  about a third of the CPU of building a batch. Anything else (a display name, quotes,
  non-ASCII) still goes through Anymail's own parser and its errors.
- The fields go as multipart/form-data, which Mailgun takes as well as a urlencoded
  form (and Anymail itself sends once a message has attachments): percent-encoding the
  `recipient-variables` field alone, some 400 kB per call, cost 30 to 40 ms of CPU per
  1,000 recipients; multipart copies each value as it is.
"""

import re
from collections.abc import Iterable
from typing import Any

from anymail.backends.mailgun import EmailBackend as AnymailMailgunBackend
from anymail.backends.mailgun import MailgunPayload
from anymail.utils import EmailAddress, parse_address_list

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")


def address_list(addresses: Iterable[Any]) -> list[EmailAddress]:
    """Anymail's parse_address_list, without the header parser for plain addresses."""
    parsed: list[EmailAddress] = []
    for address in addresses:
        if isinstance(address, str) and PLAIN_ADDRESS.fullmatch(address):
            local, _, domain = address.rpartition("@")
            parsed.append(EmailAddress(username=local, domain=domain))
        else:
            parsed.extend(parse_address_list([address], field="to"))
    return parsed


def form_fields(fields: dict[str, Any]) -> list[tuple[str, tuple[None, str | bytes]]]:
    """The same fields as multipart/form-data parts, in the same order: repeated names for
    lists, None values left out (as requests encodes a dict)."""
    parts = []
    for name, values in fields.items():
        for value in values if isinstance(values, list | tuple) else [values]:
            if value is not None:
                text = value if isinstance(value, str | bytes) else str(value)
                parts.append((name, (None, text)))
    return parts


class MailgunBatchPayload(MailgunPayload):
    base_message_attrs = tuple(
        (attr, combiner, address_list if attr == "to" else converter)
        for attr, combiner, converter in MailgunPayload.base_message_attrs
    )

    def get_request_params(self, api_url: str) -> dict[str, Any]:
        params = super().get_request_params(api_url)
        if not params.get("files") and isinstance(params.get("data"), dict):
            # Mailgun takes either encoding (Anymail itself switches to multipart when
            # there are attachments); multipart copies each value as it is.
            params["files"] = form_fields(params["data"])
            params["data"] = None
        return params


class EmailBackend(AnymailMailgunBackend):
    """Anymail's Mailgun backend (same settings, same errors) with MailgunBatchPayload."""

    def build_message_payload(self, message: Any, defaults: Any) -> MailgunPayload:
        return MailgunBatchPayload(message, defaults, self)
