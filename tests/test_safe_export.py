"""CSV and Excel exports cannot run formulas: cells starting with = + - @ tab CR are inert."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bizchat.errors import BizchatError
from bizchat.privacy.safe_export import (
    DANGEROUS_START,
    excel_available,
    neutralise,
    neutralise_frame,
    safe_csv,
    safe_excel,
)

HOSTILE = ['=HYPERLINK("http://evil.example","klick")', "+49 170 1234567", "-2+3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"]


def test_hostile_cells_get_a_leading_apostrophe():
    for value in HOSTILE:
        assert neutralise(value) == "'" + value
    assert neutralise("Anna =1") == "Anna =1"       # only the start matters
    assert neutralise(-5) == -5 and neutralise(3.5) == 3.5 and neutralise(None) is None


@given(st.text())
def test_no_neutralised_text_starts_dangerously(text):
    out = neutralise(text)
    assert not out.startswith(DANGEROUS_START)
    assert out == ("'" + text if text.startswith(DANGEROUS_START) else text)


def test_safe_csv_round_trip(tmp_path):
    frame = pd.DataFrame({"name": HOSTILE, "n": range(len(HOSTILE)), "=header": "x"})
    path = tmp_path / "out.csv"
    safe_csv(frame, path)
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    assert rows[0] == ["name", "n", "'=header"]
    assert [r[0] for r in rows[1:]] == ["'" + v for v in HOSTILE]
    assert [r[1] for r in rows[1:]] == [str(i) for i in range(len(HOSTILE))]
    assert not list(tmp_path.glob(".*tmp"))
    assert safe_csv(frame).splitlines()[1].startswith('"\'=HYPERLINK')


def test_neutralise_frame_leaves_numbers_and_the_input_alone():
    frame = pd.DataFrame({"a": ["=1", "ok"], "b": [-1, 2]})
    out = neutralise_frame(frame)
    assert out["a"].tolist() == ["'=1", "ok"] and out["b"].tolist() == [-1, 2]
    assert frame["a"].tolist() == ["=1", "ok"]


def test_excel_needs_openpyxl_or_says_so(tmp_path):
    frame = pd.DataFrame({"name": HOSTILE})
    if not excel_available():
        with pytest.raises(BizchatError, match="openpyxl"):
            safe_excel(frame, tmp_path / "out.xlsx")
        assert not (tmp_path / "out.xlsx").exists()
        return
    import openpyxl

    safe_excel({"kontakte": frame}, tmp_path / "out.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "out.xlsx")["kontakte"]
    values = [row[0].value for row in sheet.iter_rows(min_row=2)]
    # xlsx is XML: a carriage return inside a cell comes back as a line feed.
    assert values == ["'" + v.replace("\r", "\n") for v in HOSTILE]
    assert all(row[0].data_type == "s" for row in sheet.iter_rows(min_row=2))
