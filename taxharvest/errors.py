"""The one exception type for user mistakes: bad files, bad rows, bad arguments."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A user input the project cannot accept, located as precisely as possible.

    ``str(error)`` is one readable line: ``FILE, line N, field 'F': message``. The CLI
    prints it and exits with status 2, without a traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.row = row
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = [part for part in (
            self.path,
            f"line {self.row}" if self.row is not None else None,
            f"field '{self.field}'" if self.field is not None else None,
        ) if part]
        return f"{', '.join(where)}: {self.message}" if where else self.message
