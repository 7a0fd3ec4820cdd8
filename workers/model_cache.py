"""A worker's local copies of model files, by sha256, fetched from the shared store.

A worker on a new host starts with an empty cache and fills it from the database; a
cached file is used only after its hash is checked again, so a file damaged on disk is
fetched anew instead of served.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from shared.db.engine import session_scope
from shared.model_store import copy_blob

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, sha256: str) -> Path:
        """A local file holding the blob ``sha256``, fetched from the store if need be."""
        target = self.directory / sha256
        if target.is_file():
            if file_sha256(target) == sha256:
                return target
            log.warning("model cache: %s does not match its hash; fetching it again", target)
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".fetching-", dir=self.directory)
        try:
            with os.fdopen(handle, "wb") as out, session_scope() as session:
                copy_blob(session, sha256=sha256, into=out)
            # Atomic: two processes fetching the same file at once both end with it whole.
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)
        log.info("model cache: fetched %s... from the model store", sha256[:12])
        return target
