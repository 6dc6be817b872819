"""CSV and Excel files that cannot run formulas (CSV/formula injection).

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and
a leading tab or carriage return can hide such a start; a customer's name like
``=HYPERLINK("http://evil","click")`` would then run when staff open an export. Every
string cell that starts with one of these characters gets a leading apostrophe, which
spreadsheets show as text (OWASP's advice). Numbers stay numbers: only text is touched.
The price is that a text phone number ``+4915...`` is written as ``'+4915...``.

Excel files are written with openpyxl (a dependency); should it be missing, ``safe_excel``
says how to install it, and everything else works with CSV.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from ..errors import BizchatError

DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """``value`` made inert for a spreadsheet (strings only; anything else unchanged)."""
    if isinstance(value, str) and value.startswith(DANGEROUS_START):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell (and the header) neutralised."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if series.dtype == object or pd.api.types.is_string_dtype(series):
            out[column] = series.map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def safe_csv(frame: pd.DataFrame, path: str | os.PathLike | None = None, **kwargs) -> str | None:
    """Write ``frame`` as CSV with neutralised cells (UTF-8, every cell quoted).

    With ``path`` None the CSV text is returned. The file is written to a temporary name
    and renamed, so a reader never sees half a file.
    """
    options = {"index": False, "quoting": csv.QUOTE_NONNUMERIC, "lineterminator": "\n"}
    options.update(kwargs)
    text = neutralise_frame(frame).to_csv(None, **options)
    if path is None:
        return text
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return None


def excel_available() -> bool:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        return False
    return True


def safe_excel(frames: pd.DataFrame | dict[str, pd.DataFrame], path: str | os.PathLike) -> None:
    """Write one sheet per frame (``{"sheet": frame}``) with neutralised cells. Needs openpyxl."""
    if not excel_available():
        raise BizchatError(
            "Writing Excel files needs openpyxl, which is not installed. Install it "
            "(pip install openpyxl) or export CSV instead (safe_csv / --csv-dir).",
            path=str(path))
    if isinstance(frames, pd.DataFrame):
        frames = {"data": frames}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for sheet, frame in frames.items():
            safe = neutralise_frame(frame)
            # Excel has no time zones: write UTC wall-clock times.
            for column in safe.columns:
                if isinstance(safe[column].dtype, pd.DatetimeTZDtype):
                    safe[column] = safe[column].dt.tz_convert("UTC").dt.tz_localize(None)
            safe.to_excel(writer, sheet_name=str(sheet)[:31], index=False)
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


__all__ = ["DANGEROUS_START", "excel_available", "neutralise", "neutralise_frame", "safe_csv",
           "safe_excel"]
