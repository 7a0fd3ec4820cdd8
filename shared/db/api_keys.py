"""API keys of the HTTP API: created with a random secret shown once, kept as its hash.

Usage::

    with session_scope() as session:
        secret, key = create_key(session, name="ci", scopes=("predict",), created_by="me")
        found = key_for_secret(session, secret=secret)   # None once revoked
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.db.models import ApiKey, utcnow
from shared.errors import ConfigurationError, UnknownRequestError

SCOPES = ("predict", "feedback", "admin")
# Recognisable in logs and by secret scanners; the rest is 256 random bits.
SECRET_PREFIX = "mlq_"


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class UnknownKeyError(UnknownRequestError):
    """No API key has this id."""

    code = "unknown_api_key"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        row.id,
        row.name,
        row.prefix,
        frozenset(filter(None, row.scopes.split(","))),
        row.created_at,
        row.created_by,
        row.revoked_at,
    )


def create_key(
    session: Session, *, name: str, scopes: Sequence[str], created_by: str
) -> tuple[str, KeyInfo]:
    """A new key: (its secret, to show once; what is stored)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ConfigurationError(
            f"scopes must be some of {', '.join(SCOPES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name[:128],
        prefix=secret[: len(SECRET_PREFIX) + 6],
        secret_sha256=hash_secret(secret),
        scopes=",".join(s for s in SCOPES if s in scopes),
        created_by=created_by[:128],
    )
    session.add(row)
    session.flush()
    return secret, _info(row)


def key_for_secret(session: Session, *, secret: str) -> KeyInfo | None:
    """The live key with this secret, or None (unknown or revoked)."""
    row = session.execute(
        select(ApiKey).where(
            ApiKey.secret_sha256 == hash_secret(secret), ApiKey.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    return _info(row) if row else None


def list_keys(session: Session) -> list[KeyInfo]:
    return [_info(row) for row in session.execute(select(ApiKey).order_by(ApiKey.id)).scalars()]


def revoke_key(session: Session, *, key_id: int) -> KeyInfo:
    """Revoke a key (a no-op for one revoked already); its row stays, for the record."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise UnknownKeyError(f"no API key #{key_id}")
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.refresh(row)
    return _info(row)
