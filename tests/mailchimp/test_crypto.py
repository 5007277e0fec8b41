"""API keys are stored encrypted and never shown whole."""
from __future__ import annotations

import pytest

from portal.mailchimp.crypto import InvalidToken, decrypt_secret, encrypt_secret, generate_key, mask_api_key

KEY = "0123456789abcdef0123456789abcdef-us6"


def test_encrypted_key_decrypts_back_and_does_not_contain_the_key():
    fernet_key = generate_key()
    token = encrypt_secret(KEY, fernet_key)
    assert KEY not in token and "0123456789abcdef" not in token
    assert decrypt_secret(token, fernet_key) == KEY
    assert decrypt_secret(token, fernet_key.encode()) == KEY


def test_wrong_fernet_key_cannot_decrypt():
    token = encrypt_secret(KEY, generate_key())
    with pytest.raises(InvalidToken):
        decrypt_secret(token, generate_key())


def test_masked_key_shows_only_the_last_four_and_the_datacenter():
    assert mask_api_key(KEY) == "••••••••cdef-us6"
    assert "0123456789" not in mask_api_key(KEY)


def test_short_or_odd_keys_reveal_nothing_secret():
    assert mask_api_key("") == ""
    assert mask_api_key(None) == ""
    assert mask_api_key("abc-us1") == "••••••••-us1"
    assert "secret" not in mask_api_key("mysecretvalue")
