"""Virtual keys: ``mb-<key id>-<secret>``; only a SHA-256 of the secret is stored, compared in constant time.

The key id is public (it names the key in the ledger and the admin API); the secret is 256 random bits,
shown once at creation. A fast hash is right here: the secret has full entropy, so there is nothing to
brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

PREFIX = "mb-"


def new_key() -> tuple[str, str, str]:
    """(full key to show once, key id, secret hash to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{PREFIX}{key_id}-{secret}", key_id, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    return authorization[7:].strip()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("-")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


@dataclass(frozen=True)
class KeyRecord:
    """A virtual key as the gateway needs it on the hot path (no secret)."""

    key_id: str
    secret_hash: str
    team: str | None
    name: str | None = None
    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: Decimal | None = None
    budget_period: str = "monthly"
    log_content: bool = False
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class TeamRecord:
    name: str
    budget_usd: Decimal | None = None
    budget_period: str = "monthly"
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] | None = None
