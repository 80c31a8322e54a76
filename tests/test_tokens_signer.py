"""The link signer used while sending gives Django's own signed token, to the byte."""

import pytest
import time_machine
from django.core import signing
from hypothesis import given
from hypothesis import strategies as st

from newsletter import tokens
from newsletter.tokens import LinkSigner, Purpose

KEY = "a-secret-key-for-these-tests-only-0123456789"


def django_token(subscriber_id, secret, purpose, key=KEY):
    salt = f"advances.newsletter.{purpose}"
    return signing.TimestampSigner(key=key, salt=salt).sign_object([subscriber_id, secret])


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize(
    ("subscriber_id", "secret"),
    [(1, "0123456789abcdef0123456789abcdef"), (987654321, "ffff"), (5, 'quote"and\\slash é')],
)
def test_link_signer_gives_djangos_token(purpose, subscriber_id, secret):
    with time_machine.travel(1_790_000_000.25, tick=False):
        ours = LinkSigner(key=KEY, salt=f"advances.newsletter.{purpose}")
        assert ours.sign_ids(subscriber_id, secret) == django_token(subscriber_id, secret, purpose)


@given(subscriber_id=st.integers(min_value=1, max_value=2**53), secret=st.text(max_size=40))
def test_link_signer_gives_djangos_token_for_any_id_and_secret(subscriber_id, secret):
    with time_machine.travel(1_800_000_000, tick=False):
        ours = LinkSigner(key=KEY, salt="advances.newsletter.unsubscribe")
        assert ours.sign_ids(subscriber_id, secret) == django_token(
            subscriber_id, secret, "unsubscribe"
        )


def test_a_token_signed_later_carries_the_later_time():
    signer = LinkSigner(key=KEY, salt="advances.newsletter.confirm")
    with time_machine.travel(1_800_000_000, tick=False):
        first = signer.sign_ids(3, "abc")
    with time_machine.travel(1_800_000_007, tick=False):
        later = signer.sign_ids(3, "abc")
        assert later == django_token(3, "abc", "confirm")
    assert first != later


@pytest.mark.django_db
def test_sent_links_still_read_back_and_keep_their_purpose(subscriber_factory):
    subscriber = subscriber_factory()
    token = tokens.token_for(subscriber.pk, subscriber.secret, Purpose.UNSUBSCRIBE)
    assert tokens.read_token(token, Purpose.UNSUBSCRIBE) == subscriber
    with pytest.raises(tokens.InvalidToken):
        tokens.read_token(token, Purpose.PREFERENCES)
