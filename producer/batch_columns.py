"""Columns of batch input that are not features: the caller's row id, and columns to drop.

A file often holds more than the model's features: a row id the caller wants to find in
the results, the true label, notes. ``--id-column`` takes the id out of each record and
keeps it producer-side (the ``batch_external_id`` table, joined by ``mlq batch
results``); ``--ignore-columns`` drops named columns. Neither is sent to a worker.

Usage::

    columns = BatchColumns(id_column="row_id", ignore_columns=("income",))
    columns.check(header)                   # both named columns must be in the header
    for record in columns.apply(records):   # records as they will be sent
        ...
    columns.take_ids(len(chunk))            # the ids of the records given out, in order
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from producer.batches import BatchInputError


@dataclass
class BatchColumns:
    id_column: str | None = None
    ignore_columns: Sequence[str] = ()
    _ids: deque[str | None] = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.id_column is not None and self.id_column in self.ignore_columns:
            raise BatchInputError(
                f"column {self.id_column!r} is the id column and ignored: name it once"
            )

    @property
    def not_sent(self) -> set[str]:
        return {*self.ignore_columns, *([self.id_column] if self.id_column is not None else [])}

    def check(self, header: Sequence[str], where: str = "the header") -> None:
        """Refuse an id column or ignored column that ``header`` does not have."""
        absent = [name for name in (self.id_column, *self.ignore_columns) if name is not None]
        absent = [name for name in absent if name not in header]
        if absent:
            listed = ", ".join(repr(name) for name in absent)
            raise BatchInputError(
                f"{where} has no column {listed} (it has {', '.join(map(repr, header))})"
            )

    def apply(self, records: Iterable[Any]) -> Iterator[Any]:
        """The records without the columns that are not sent; ids are kept for ``take_ids``.

        A record that is not an object passes as it is (the worker gives it its error
        row) with no id; a record without the id column has none either.
        """
        dropped = self.not_sent
        for record in records:
            if self.id_column is not None:
                found = record.get(self.id_column) if isinstance(record, dict) else None
                self._ids.append(None if found is None else str(found))
            if dropped and isinstance(record, dict):
                record = {name: value for name, value in record.items() if name not in dropped}
            yield record

    def take_ids(self, count: int) -> list[str | None]:
        """The ids of the next ``count`` records given out by ``apply``, in input order."""
        return [self._ids.popleft() for _ in range(min(count, len(self._ids)))]
