"""Reading users' files and writing outputs whole or not at all.

Outputs are checked before a run (:func:`check_output`, :func:`check_folder`: the folder
exists, is a folder and takes files) and written atomically afterwards (:func:`write_atomic`);
a user's CSV is read by :func:`read_csv_rows`. Every problem is an
:class:`~taxharvest.errors.InputError` naming the path.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from taxharvest.errors import InputError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _probe(folder: Path, option: str | None) -> None:
    """Raise unless a file can be created in the existing ``folder``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".taxharvest-probe-")
    except OSError as err:
        raise InputError(f"cannot write in this folder: {err.strerror}", path=folder,
                         field=option) from None
    os.close(fd)
    os.unlink(tmp)


def check_output(path: str | Path, option: str | None = None) -> Path:
    """``path`` as an output file that can be written: its folder exists, is a folder and
    takes files, and ``path`` is not a folder. Nothing is left behind by the check."""
    path = Path(path)
    folder = path.parent
    if not folder.exists():
        raise InputError("output folder does not exist", path=folder, field=option)
    if not folder.is_dir():
        raise InputError(f"is a file, not a folder (output {path})", path=folder, field=option)
    if path.is_dir():
        raise InputError("is a folder; give a file name", path=path, field=option)
    _probe(folder, option)
    return path


def check_folder(path: str | Path, option: str | None = None, *, parents: bool = False
                 ) -> Path:
    """``path`` as an output folder: an existing folder that takes files, or a new one (made
    by the caller when the run starts) whose parent is such a folder; with ``parents``, whose
    nearest existing ancestor is."""
    path = Path(path)
    existing = path if path.exists() else path.parent
    while parents and not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.exists():
        raise InputError(f"folder does not exist (output folder {path})", path=existing,
                         field=option)
    if not existing.is_dir():
        raise InputError(f"is a file, not a folder (output folder {path})", path=existing,
                         field=option)
    _probe(existing, option)
    return path


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half-written."""
    path = Path(path)
    if not path.parent.is_dir():
        check_output(path)  # raises, naming what is wrong with the folder
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise InputError(f"cannot write: {err.strerror}", path=path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write: {err.strerror}", path=path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_text(data: object) -> str:
    """``data`` as strict JSON (what every reader takes: jq, browsers): a NaN or infinite
    number, which JSON has not, is written as null."""
    return json.dumps(_finite(data), indent=2, sort_keys=False, allow_nan=False) + "\n"


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def csv_text(rows: Iterable[dict], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_csv_rows(path: str | Path, required: Sequence[str], what: str,
                  optional: Sequence[str] = (), *, empty_ok: bool = False
                  ) -> list[dict[str, str]]:
    """The rows of a user's CSV file, keyed by lower-cased header names.

    Raises :class:`InputError` naming the file when it cannot be read (missing, a folder,
    not UTF-8 text, not CSV), a required column is missing (line 1), or it has no rows
    (unless ``empty_ok``: a header alone is then no rows). Data rows are lines 2, 3, ...
    of the file.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as err:
        raise InputError(f"cannot read {what}: {err.strerror}", path=path) from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = [h.strip().lower() for h in reader.fieldnames or []]
            missing = [c for c in required if c not in header]
            if missing:
                expected = ",".join(required) + "".join(f"[,{c}]" for c in optional)
                raise InputError(f"missing column(s) {', '.join(missing)}; expected {expected}",
                                 path=path, row=1)
            reader.fieldnames = header
            rows = list(reader)
        except UnicodeDecodeError:
            raise InputError(f"not a text CSV file (expected UTF-8 {what})", path=path) from None
        except csv.Error as err:
            raise InputError(f"not a readable CSV file: {err}", path=path,
                             row=reader.line_num or None) from None
        except OSError as err:
            raise InputError(f"cannot read {what}: {err.strerror}", path=path) from None
    if not rows and not empty_ok:
        raise InputError(f"no {what} rows", path=path)
    return rows
