"""Errors of the right-to-erasure machinery (part of the one ``GrowthlakeError`` hierarchy)."""

from __future__ import annotations

from lake.errors import GrowthlakeError

__all__ = ["ErasureError", "ErasureIncomplete", "InvalidSubject", "UnknownPersonColumn"]


class ErasureError(GrowthlakeError):
    """An erasure could not be carried out (nothing of it is reported as done)."""


class InvalidSubject(ErasureError):
    """The id given to erase is not a usable identifier."""

    def __init__(self, value: object, problem: str) -> None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:80] + "…")
        super().__init__(
            f"cannot erase {shown}: {problem}. Pass the person's user_id (or an anonymous_id) exactly "
            "as the product sends it, e.g. `growthlake erase --user usr_0a1b2c3d4e5f6a7b`."
        )


class UnknownPersonColumn(ErasureError):
    """A Delta table has a column that looks like a person key the erasure does not know."""

    def __init__(self, table: str, column: str) -> None:
        self.table, self.column = table, column
        super().__init__(
            f"table {table} has a column {column!r} that looks like a person identifier, and the erasure does not "
            "know whether it holds user ids. Nothing was erased. Rename it, or declare it in "
            "lake/erasure/delta_tables.py (IDENTITY_COLUMNS if it holds user_id / anonymous_id / person_id values, "
            "NOT_PERSON_COLUMNS if it never does), then run the erasure again."
        )


class ErasureIncomplete(ErasureError):
    """After an erasure, some file under the storage root still holds one of the person's ids."""

    def __init__(self, erasure_id: str, leftovers: list[str]) -> None:
        self.leftovers = list(leftovers)
        listing = ", ".join(leftovers[:10]) + (" …" if len(leftovers) > 10 else "")
        super().__init__(
            f"erasure {erasure_id}: the person's ids are still present in {len(leftovers)} file(s) growthlake does "
            f"not know how to rewrite: {listing}. Everything else was erased; remove or rewrite those files by hand "
            "(they are not growthlake's tables), then run the erasure again to confirm."
        )
