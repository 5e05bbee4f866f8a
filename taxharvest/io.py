"""Writing outputs whole or not at all."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from taxharvest.errors import InputError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half-written."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError("output folder does not exist", path=path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_text(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def csv_text(rows: Iterable[dict], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_csv_rows(path: str | Path, required: Sequence[str], what: str,
                  optional: Sequence[str] = ()) -> list[dict[str, str]]:
    """The rows of a user's CSV file, keyed by lower-cased header names.

    Raises :class:`InputError` naming the file when it cannot be read, a required column
    is missing (line 1), or it has no rows. Data rows are lines 2, 3, ... of the file.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as err:
        raise InputError(f"cannot read {what}: {err.strerror}", path=path) from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            expected = ",".join(required) + "".join(f"[,{c}]" for c in optional)
            raise InputError(f"missing column(s) {', '.join(missing)}; expected {expected}",
                             path=path, row=1)
        reader.fieldnames = header
        rows = list(reader)
    if not rows:
        raise InputError(f"no {what} rows", path=path)
    return rows
