"""What a submitted batch gives back, and the errors of submitting one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

from shared.contracts import batch_request_id
from shared.errors import MlqError, UnknownRequestError


@dataclass(frozen=True)
class BatchSubmission:
    """A submitted batch: its id and, derived from it, every record's request id."""

    batch_id: str
    total: int

    @property
    def request_ids(self) -> RequestIds:
        return RequestIds(self.batch_id, self.total)


class RequestIds(Sequence[str]):
    """The request ids of a batch's records in input order, made on demand (a batch of
    millions needs no list of millions)."""

    def __init__(self, batch_id: str, total: int) -> None:
        self.batch_id = batch_id
        self.total = total

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.total))]
        if index < 0:
            index += self.total
        if not 0 <= index < self.total:
            raise IndexError(index)
        return batch_request_id(self.batch_id, index)


class BatchInputError(MlqError):
    """The batch input cannot be read, or does not fit what it is sent to."""

    code = "batch_input"


class BatchSubmitError(MlqError):
    """Sending a batch stopped part way."""

    code = "batch_submit"


class UnknownBatchError(UnknownRequestError):
    """No batch with this id was ever submitted."""
