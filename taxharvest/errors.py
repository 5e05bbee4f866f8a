"""One exception hierarchy for user mistakes: bad files, bad rows, bad arguments.

Every kind derives from :class:`InputError`; the CLI prints ``str(error)`` (one line naming
file, row and field) and exits with status 2, without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A user input the project cannot accept, located as precisely as possible.

    ``str(error)`` is one readable line: ``FILE, line N, field 'F': message`` (``unit``
    names the row kind: ``line`` for CSV, ``row`` for parquet).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
        unit: str = "line",
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.row = row
        self.field = field
        self.unit = unit
        super().__init__(self._render())

    def _render(self) -> str:
        where = [part for part in (
            self.path,
            f"{self.unit} {self.row}" if self.row is not None else None,
            f"field '{self.field}'" if self.field is not None else None,
        ) if part]
        return f"{', '.join(where)}: {self.message}" if where else self.message


class DataError(InputError):
    """A problem in a market-data file (prices, sectors, weights, proxies)."""


class LedgerError(InputError):
    """A trade the ledger cannot apply (selling more than held, an unknown lot)."""


class TaxTableError(InputError):
    """A tax table or tax profile that does not validate."""
