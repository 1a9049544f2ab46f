"""Codes delivered through the open API are encrypted for the agent, field by field.

The key is derived from the secret of the API key that signed the request, so a
code in a response (or in a proxy's log of it) opens only for the holder of that
secret, and the order number as associated data keeps a field from being passed
off as part of another order. docs/open-api.md gives agents the recipe.
"""

import base64
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kaquan.channels.schemas import AgentCodeOut
from kaquan.inventory import DeliveredCode

HKDF_INFO = b"kaquan/open-api/codes/v1"
KEY_BYTES = 32
NONCE_BYTES = 12


def code_key(secret: str, key_id: str) -> bytes:
    """HKDF-SHA256(ikm=secret, salt=key id, info=HKDF_INFO), 32 bytes: the AES-256-GCM key for one API key."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=key_id.encode(), info=HKDF_INFO)
    return hkdf.derive(secret.encode())


def encrypt_field(key: bytes, plaintext: str, order_no: str) -> str:
    """base64(nonce || ciphertext || tag), with a fresh random nonce and the order number as associated data."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), order_no.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")


def encrypt_codes(key: bytes, codes: Sequence[DeliveredCode], order_no: str) -> list[AgentCodeOut]:
    """An order's codes as they go out to an agent or a store: card number and secret each sealed for the key."""
    return [
        AgentCodeOut(
            card_no=encrypt_field(key, code.card_no, order_no) if code.card_no else None,
            secret=encrypt_field(key, code.secret, order_no),
            expires_on=code.expires_on,
        )
        for code in codes
    ]


def decrypt_field(key: bytes, value: str, order_no: str) -> str:
    """The plaintext of `encrypt_field`; ValueError when the key, the order number or the value is wrong."""
    try:
        raw = base64.b64decode(value, validate=True)
        opened = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], order_no.encode())
    except (ValueError, InvalidTag):  # binascii.Error is a ValueError
        raise ValueError(f"the code field does not open under this key for order {order_no}") from None
    return opened.decode()
