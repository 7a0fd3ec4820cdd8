"""The shared model store: model files in the database, by their sha256.

Every host reaches the database already, so storing the files there needs no extra
service: a worker on a new machine with an empty disk gets the models it serves from
here (and keeps a local copy, ``workers/model_cache.py``). Files are split into chunks
so that no single value is large; a file is written once (its hash is its key) and
read back only after its hash is checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import ModelBlob, ModelBlobChunk
from shared.errors import ArtifactError

CHUNK_BYTES = 8 << 20


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def has_blob(session: Session, *, sha256: str) -> bool:
    return session.get(ModelBlob, sha256) is not None


def put_blob(session: Session, data: bytes) -> str:
    """Store ``data`` unless a blob with its hash is there already; return the hash.

    Two registrations racing with the same file both succeed: the second one's rows
    conflict on the primary keys and are skipped.
    """
    sha256 = sha256_of_bytes(data)
    if has_blob(session, sha256=sha256):
        return sha256
    chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    session.execute(
        insert(session, ModelBlob)
        .values(sha256=sha256, size=len(data), chunks=len(chunks))
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    for seq, chunk in enumerate(chunks):
        session.execute(
            insert(session, ModelBlobChunk)
            .values(sha256=sha256, seq=seq, data=chunk)
            .on_conflict_do_nothing(index_elements=["sha256", "seq"])
        )
    return sha256


def iter_blob(session: Session, *, sha256: str) -> Iterator[bytes]:
    """The chunks of a blob in order, one at a time (a model need not fit twice in memory)."""
    blob = session.get(ModelBlob, sha256)
    if blob is None:
        raise ArtifactError(f"the model store holds no file with sha256 {sha256[:12]}...")
    stored = session.execute(
        select(func.count()).select_from(ModelBlobChunk).where(ModelBlobChunk.sha256 == sha256)
    ).scalar_one()
    if stored != blob.chunks:
        raise ArtifactError(
            f"the model store holds {stored} of the {blob.chunks} chunks of {sha256[:12]}..."
        )
    for seq in range(blob.chunks):
        yield session.execute(
            select(ModelBlobChunk.data).where(
                ModelBlobChunk.sha256 == sha256, ModelBlobChunk.seq == seq
            )
        ).scalar_one()


def copy_blob(session: Session, *, sha256: str, into: BinaryIO) -> None:
    """Write a blob to a file, refusing it (ArtifactError) unless its hash matches."""
    digest = hashlib.sha256()
    for chunk in iter_blob(session, sha256=sha256):
        digest.update(chunk)
        into.write(chunk)
    if digest.hexdigest() != sha256:
        raise ArtifactError(
            f"the model store's copy of {sha256[:12]}... does not match its hash "
            f"(got {digest.hexdigest()[:12]}...): refusing it"
        )


def read_blob(session: Session, *, sha256: str) -> bytes:
    data = b"".join(iter_blob(session, sha256=sha256))
    if sha256_of_bytes(data) != sha256:
        raise ArtifactError(f"the model store's copy of {sha256[:12]}... does not match its hash")
    return data
