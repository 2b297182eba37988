"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.

SIP passwords, carrier tokens and webhook signing secrets are stored encrypted with one
process key. API-key secrets are not here: they are hashed (see tenancy.keys).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from numberplane.kernel.settings import get_settings


class SecretKeyError(RuntimeError):
    pass


def _load_key() -> bytes:
    settings = get_settings()
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.secret_key_file)
    if path.exists():
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    try:
        return Fernet(_load_key())
    except (ValueError, TypeError) as exc:
        raise SecretKeyError("NUMBERPLANE_SECRET_KEY is not a valid Fernet key") from exc


def reset_key_cache() -> None:
    _fernet.cache_clear()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError("a stored secret cannot be decrypted with the configured key") from exc
