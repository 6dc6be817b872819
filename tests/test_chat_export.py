"""WhatsApp chat exports: our samples of every platform and layout, parsed exactly;
invisible characters, unreadable files, round trips."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bizchat.errors import BizchatError, ImportFormatError
from bizchat.ingest.chat_export import COLUMNS, KINDS, parse_export

OURS = Path(__file__).parent / "fixtures" / "exports"
LRM, NNBSP = "\u200e", "\u202f"
T = pd.Timestamp


def rows(df: pd.DataFrame) -> list[tuple]:
    """(timestamp, author or None, kind, text) per message, in file order."""
    return [(r.timestamp, None if pd.isna(r.author) else r.author, r.kind, r.text)
            for r in df.itertuples()]


def check_contract(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == COLUMNS
    assert str(df["timestamp"].dtype) == "datetime64[us]"
    for column in ("author", "text", "kind"):
        assert df[column].dtype == pd.StringDtype("pyarrow")
        assert df[column].dtype.na_value is pd.NA
    assert df["edited"].dtype == bool and df["line"].dtype == np.int64
    assert set(df["kind"]) <= set(KINDS)
    assert df["text"].notna().all()
    assert (df["kind"].eq("system") == df["author"].isna()).all()
    assert df["line"].is_monotonic_increasing


# -- our samples, parsed exactly ----------------------------------------------------
# tests/fixtures/exports: the four platforms (Android/iOS, German/English) with the
# invisible characters real exports carry (U+FEFF at line starts and after "[", U+200E
# before iOS texts and a customer's STOP, U+202A/U+202C around numbers, U+2068/U+2069
# around names, U+00A0/U+202F), and the date layouts of other locales. expected.json
# holds the parse of each, written by hand.

EXPECTED = {name: rows for name, rows in
            json.loads((OURS / "expected.json").read_text(encoding="utf-8")).items()
            if not name.startswith("_")}


def exact(df: pd.DataFrame) -> list[list]:
    """The frame in expected.json's shape."""
    return [[r.timestamp, None if pd.isna(r.author) else r.author, r.kind, r.text,
             bool(r.edited), int(r.line)] for r in df.itertuples()]


def as_expected(rows: list[list]) -> list[list]:
    return [[T(at), *rest] for at, *rest in rows]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_parses_exactly(name):
    df = parse_export(OURS / name)
    check_contract(df)
    assert exact(df) == as_expected(EXPECTED[name])


@pytest.mark.parametrize("name", ["android_de_marks.txt", "ios_en_marks.txt"])
def test_sample_parses_the_same_from_zip_utf16_and_streams(name, tmp_path):
    path = OURS / name
    expected = parse_export(path)
    text = path.read_text(encoding="utf-8")
    assert parse_export(io.StringIO(text)).equals(expected)
    assert parse_export(io.BytesIO(text.encode("utf-16"))).equals(expected)
    archive = tmp_path / "WhatsApp Chat.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "_chat.txt")
    assert parse_export(archive).equals(expected)


def test_a_bom_at_line_starts_loses_no_message():
    """A German Android export with U+FEFF before many headers: every message stays its
    own, with its author (the lines used to be glued to the message before)."""
    bom = "\ufeff"
    lines = [f"{bom if i % 5 in (1, 3) else ''}14.03.25, 10:{i:02d} - "
             f"{'Rita' if i % 2 else 'Laden'}: Nachricht {i}" for i in range(50)]
    df = parse_export(io.StringIO("\n".join(lines) + "\n"))
    assert len(df) == 50 and set(df["author"]) == {"Rita", "Laden"}
    assert df["text"].tolist() == [f"Nachricht {i}" for i in range(50)]
    assert df["line"].tolist() == list(range(1, 51))


@pytest.mark.parametrize("every", [1, 997])  # marks on every line, or on a few of a long file
def test_marks_are_removed_however_many_there_are(every):
    """Two ways to cut the marks out (a mask when they are many, slices when few): the same
    messages either way."""
    bom, number = "\ufeff", "\u202a+49 170 1234567\u202c"
    lines = [f"{bom if i % every == 0 else ''}14.03.25, 10:{i % 60:02d} - "
             f"{number if i % every == 0 else 'Laden'}: Nachricht {i}" for i in range(3000)]
    df = parse_export(io.StringIO("\n".join(lines) + "\n"))
    assert len(df) == 3000 and set(df["author"]) <= {"+49 170 1234567", "Laden"}
    assert df["text"].tolist() == [f"Nachricht {i}" for i in range(3000)]


def test_a_bom_after_the_bracket_of_line_one_is_read():
    """German iOS with U+FEFF just after "[" was refused at line 1."""
    df = parse_export(io.StringIO("[\ufeff14.03.25, 09:58:30] Rita: Hallo\n"
                                  "\ufeff[14.03.25, 09:59:00] Laden: Guten Tag\n"))
    assert rows(df) == [(T("2025-03-14 09:58:30"), "Rita", "text", "Hallo"),
                        (T("2025-03-14 09:59:00"), "Laden", "text", "Guten Tag")]


def test_a_left_to_right_mark_before_an_android_text_is_no_system_line():
    """A customer's "\u200eSTOP" on Android is their message (U+200E means nothing there)."""
    df = parse_export(io.StringIO("15.03.25, 11:30 - +49 170 1234567: \u200eSTOP\n"))
    assert rows(df) == [(T("2025-03-15 11:30"), "+49 170 1234567", "text", "STOP")]


def test_ios_generated_lines_are_system_only_for_the_chat_name():
    """iOS writes system texts as lines of the chat's name, with U+200E before the text.
    A person who writes ordinary lines keeps every line, U+200E or not."""
    text = ("[14.03.25, 09:58:02] Lesekreis: \u200eAnna hat die Gruppe erstellt\n"
            "[14.03.25, 09:59:00] Ben: Hallo\n"
            "[14.03.25, 10:00:00] Ben: \u200eSTOP\n"
            "[14.03.25, 10:01:00] Anna: \u200eStandort: https://maps.example/?q=1,2\n"
            "[14.03.25, 10:02:00] Anna: \u200eBild weggelassen\n")
    assert rows(parse_export(io.StringIO(text))) == [
        (T("2025-03-14 09:58:02"), None, "system", "Anna hat die Gruppe erstellt"),
        (T("2025-03-14 09:59:00"), "Ben", "text", "Hallo"),
        (T("2025-03-14 10:00:00"), "Ben", "text", "STOP"),
        (T("2025-03-14 10:01:00"), "Anna", "text", "Standort: https://maps.example/?q=1,2"),
        (T("2025-03-14 10:02:00"), "Anna", "media", "Bild weggelassen"),
    ]


# Characters the parser removes wherever they stand.
INVISIBLE = "\ufeff\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(n for n in EXPECTED if EXPECTED[n])),
       inserts=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(INVISIBLE)), max_size=12))
def test_invisible_characters_anywhere_change_nothing(name, inserts):
    text = (OURS / name).read_text(encoding="utf-8")
    for where, char in inserts:
        at = int(where * len(text))
        text = text[:at] + char + text[at:]
    assert exact(parse_export(io.StringIO(text))) == as_expected(EXPECTED[name])


def test_parse_export_is_at_the_package_top_level():
    import bizchat

    assert bizchat.parse_export is parse_export
    assert "parse_export" in bizchat.__all__


# -- our samples ---------------------------------------------------------------------

def test_german_android():
    df = parse_export(OURS / "android_de.txt")
    check_contract(df)
    anna, ben = "Anna Müller", "+49 170 1234567"
    assert rows(df) == [
        (T("2021-01-03 09:15"), None, "system",
         "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses "
         "Chats kann sie lesen oder anhören, nicht einmal WhatsApp. Tippe, um mehr zu erfahren."),
        (T("2021-01-03 09:15"), None, "system", "Anna Müller hat die Gruppe „Bäckerei Kunden“ erstellt"),
        (T("2021-01-03 09:16"), None, "system", "Anna Müller hat +49 170 1234567 hinzugefügt"),
        (T("2021-01-03 09:17"), anna, "text", "Guten Morgen! Ihre Bestellung ist fertig."),
        (T("2021-01-03 09:20"), ben, "text", "Danke, ich komme um 10 Uhr:\n\nGeht das?\n\n\nGruß, Ben"),
        (T("2021-01-03 09:21"), anna, "media", "<Medien ausgeschlossen>"),
        (T("2021-01-03 09:22"), ben, "deleted", "Diese Nachricht wurde gelöscht."),
        (T("2021-01-03 09:23"), anna, "deleted", "Du hast diese Nachricht gelöscht."),
        (T("2021-01-13 18:05"), anna, "text", "Preis: 12,50 €"),
        (T("2021-01-13 18:06"), ben, "media", "Rechnung_2021.pdf (Datei angehängt)"),
        (T("2021-01-13 18:07"), ben, "text", "Super 👍"),
    ]
    assert df["edited"].tolist() == [False] * 8 + [True, False, False]
    assert df["line"].tolist() == [1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16]


def test_german_ios_with_seconds_and_marks():
    df = parse_export(OURS / "ios_de_seconds.txt")
    check_contract(df)
    assert rows(df) == [
        (T("2021-01-03 09:15:01"), None, "system",
         "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses "
         "Chats kann sie lesen oder anhören, nicht einmal WhatsApp."),
        (T("2021-01-03 09:15:02"), None, "system", "Anna Müller hat die Gruppe „Bäckerei Kunden“ erstellt."),
        (T("2021-01-03 09:17:03"), "Anna Müller", "text", "Guten Morgen!"),
        (T("2021-01-03 09:18:04"), "Anna Müller", "media", "Bild weggelassen"),
        (T("2021-01-03 09:18:05"), "Anna Müller", "media", "Video weggelassen"),
        (T("2021-01-03 09:18:06"), "Ben", "media", "Audio weggelassen"),
        (T("2021-01-03 09:18:07"), "Ben", "media", "Sticker weggelassen"),
        (T("2021-01-03 09:18:08"), "Ben", "media", "GIF weggelassen"),
        (T("2021-01-03 09:18:09"), "Ben", "media", "<Anhang: 00000012-PHOTO-2021-01-03-09-18-09.jpg>"),
        (T("2021-01-03 09:18:10"), "Anna Müller", "media",
         "Rechnung 2021.pdf • 3 Seiten Dokument weggelassen"),
        (T("2021-01-03 09:19:11"), "Ben", "deleted", "Diese Nachricht wurde gelöscht."),
        (T("2021-01-03 09:20:12"), "Anna Müller", "text", "Abholung ab 10 Uhr"),
        (T("2021-01-14 17:00:13"), "Ben", "text", "Zeile eins\nZeile zwei\n\nZeile vier"),
    ]
    assert df["edited"].sum() == 1 and df["edited"].iloc[11]
    assert not df["text"].str.contains(f"[{LRM}\u200f]").any()
    assert not df["author"].str.contains(LRM).any()


def test_english_ios_12_hour_clock_with_narrow_spaces():
    df = parse_export(OURS / "ios_en_12h.txt")
    check_contract(df)
    media = df[df["kind"] == "media"]
    assert media["text"].tolist() == [
        "image omitted", "video omitted", "audio omitted", "sticker omitted", "GIF omitted",
        "document omitted", "<attached: 00000012-PHOTO-2021-01-03-12-06-10.jpg>",
        "invoice.pdf • 3 pages document omitted"]
    assert df.loc[df["kind"] == "deleted", "text"].tolist() == [
        "This message was deleted.", "You deleted this message."]
    assert df["kind"].iloc[:2].tolist() == ["system", "system"]
    assert df["text"].iloc[1] == "Anna created group “Corner Shop”"
    assert df["text"].iloc[2] == "Hello there"  # U+00A0 became a space
    assert (df["text"].iloc[13], df["edited"].iloc[13]) == ("See you at 5", True)
    assert df["timestamp"].tolist()[:3] == [T("2021-01-03 09:15:01"), T("2021-01-03 09:15:02"),
                                            T("2021-01-03 12:05:03")]
    assert df["timestamp"].tolist()[-2:] == [T("2021-01-13 23:59:15"), T("2021-01-14 00:00:16")]


def test_english_android_12_hour_clock_with_crlf():
    df = parse_export(OURS / "android_en_12h_crlf.txt")
    check_contract(df)
    assert rows(df) == [
        (T("2020-12-30 23:58"), None, "system",
         "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
         "WhatsApp, can read or listen to them. Tap to learn more."),
        (T("2020-12-30 23:59"), None, "system", "Alice added Bob"),
        (T("2020-12-31 08:05"), None, "system", 'Alice changed the subject from "Shop" to "Shop 2021"'),
        (T("2020-12-31 08:06"), "Alice", "media", "<Media omitted>"),
        (T("2020-12-31 12:30"), "Bob", "deleted", "This message was deleted"),
        (T("2020-12-31 12:31"), "Alice", "deleted", "You deleted this message"),
        (T("2020-12-31 13:00"), "Bob", "text", "Order list:\n- bread\n\n- milk"),
        (T("2020-12-31 13:01"), "Alice", "text", "ok"),
    ]
    assert df["edited"].tolist() == [False] * 7 + [True]


@pytest.mark.parametrize(("line", "at"), [
    ("2020. 12. 31. 10:00 - Anna: x", "2020-12-31 10:00"),  # Hungarian-style dates
    ("31.12.20, 23.59 \u2013 Anna: x", "2020-12-31 23:59"),  # dotted time, en dash
    ("[31/12/2020 23:59:59] Anna: x", "2020-12-31 23:59:59"),
    ("2020-12-31, 10:00 - Anna: x", "2020-12-31 10:00"),
    (f"{LRM}[12/31/20, 11:59:59 PM] {LRM}Anna: x", "2020-12-31 23:59:59"),
    ("12/31/20, 11:59 pm - Anna: x", "2020-12-31 23:59"),
    ("31/12/2020, 11:59 p. m. - Anna: x", "2020-12-31 23:59"),
    ("31/12/2020, 12:05 a.m. - Anna: x", "2020-12-31 00:05"),
    ("31/12/2020, 12:05\u00a0p.\u00a0m. - Anna: x", "2020-12-31 12:05"),
    ("31.12.20, 10:00 - Anna:\nx", "2020-12-31 10:00"),  # the text starts on the next line
    ("\u200f31.12.20,\u200f 10:00 - \u200fAnna\u200e: x", "2020-12-31 10:00"),  # marks anywhere
])
def test_header_variants(line, at):
    df = parse_export(io.StringIO(line + "\n"))
    assert rows(df) == [(T(at), "Anna", "text", "x")]


def test_dayfirst_is_detected_and_can_be_forced():
    path = OURS / "ambiguous_dates.txt"
    # Every date fits both orders; only day-first keeps the chat running forward.
    detected = parse_export(path)
    assert detected["timestamp"].dt.strftime("%Y-%m-%d").tolist() == [
        "2021-01-05", "2021-01-06", "2021-01-07", "2021-02-02"]
    assert parse_export(path, dayfirst=True).equals(detected)
    forced = parse_export(path, dayfirst=False)
    assert forced["timestamp"].dt.strftime("%Y-%m-%d").tolist() == [
        "2021-05-01", "2021-06-01", "2021-07-01", "2021-02-02"]


def test_dayfirst_forced_against_the_file_names_the_line():
    with pytest.raises(ImportFormatError) as caught:
        parse_export(OURS / "android_de.txt", dayfirst=False)
    assert caught.value.line == 14
    assert "13.01.21, 18:05" in str(caught.value) and "dayfirst=True" in str(caught.value)


def test_streams_and_zip_give_the_same_frame(tmp_path):
    path = OURS / "ios_de_seconds.txt"
    expected = parse_export(path)
    assert parse_export(io.StringIO(path.read_text(encoding="utf-8"))).equals(expected)
    with open(path, "rb") as fh:
        assert parse_export(fh).equals(expected)
    archive = tmp_path / "WhatsApp Chat - Bäckerei.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(path, "_chat.txt")
        zf.writestr("00000012-PHOTO-2021-01-03-09-18-09.jpg", b"\xff\xd8\xff")
    assert parse_export(archive).equals(expected)


def test_bom_and_utf16_are_read():
    text = (OURS / "android_de.txt").read_text(encoding="utf-8")
    expected = parse_export(io.StringIO(text))
    assert parse_export(io.BytesIO(b"\xef\xbb\xbf" + text.encode())).equals(expected)
    assert parse_export(io.BytesIO(text.encode("utf-16"))).equals(expected)


def test_whitespace_only_file_is_empty(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text(f"\n  \n{LRM}\n", encoding="utf-8")
    df = parse_export(path)
    assert df.empty
    check_contract(df)


# -- unreadable files ----------------------------------------------------------------

@pytest.mark.parametrize(("name", "line", "excerpt"), [
    ("not_an_export.txt", 1, "Hello, this is a letter"),
    ("preamble.txt", 3, "Chat with Anna"),
])
def test_first_line_that_is_not_a_header_is_named(name, line, excerpt):
    path = OURS / name
    with pytest.raises(ImportFormatError) as caught:
        parse_export(path)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, BizchatError)
    assert (error.line, error.path) == (line, str(path))
    assert f"line {line}" in str(error) and excerpt in str(error) and name in str(error)
    assert "Export the chat again" in str(error)


def test_binary_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "photo.jpg.txt"
    path.write_bytes(b"03.01.21, 09:15 - Anna: hi\n\xff\xd8\xff\xe0\x00\x10JFIF\n")
    with pytest.raises(ImportFormatError) as caught:
        parse_export(path)
    assert caught.value.line == 2 and "not UTF-8" in str(caught.value)
    path.write_bytes(b"\x00\x01\x02\x03 binary\n\x00")
    with pytest.raises(ImportFormatError) as caught:
        parse_export(path)
    assert caught.value.line == 1


def test_impossible_date_is_named():
    text = "28.02.21, 10:00 - Anna: a\n31.02.21, 10:00 - Anna: b\n"
    with pytest.raises(ImportFormatError) as caught:
        parse_export(io.StringIO(text))
    assert caught.value.line == 2 and "31.02.21, 10:00" in str(caught.value)


def test_mixed_date_orders_are_refused():
    text = "13.01.21, 10:00 - Anna: a\n01.14.21, 10:00 - Anna: b\n"
    with pytest.raises(ImportFormatError) as caught:
        parse_export(io.StringIO(text))
    assert "line 1" in str(caught.value) and "line 2" in str(caught.value)
    assert caught.value.line == 2


def test_zip_without_one_chat_is_refused(tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "x")
        zf.writestr("b.txt", "y")
    with pytest.raises(ImportFormatError, match="2 .txt files"):
        parse_export(archive)


def deflate(text: bytes) -> bytes:
    """Raw deflate, as a zip member holds it."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(text) + packer.flush()


def zip_bytes(text: bytes, *, method: int = 8, flags: int = 0, crc: int | None = None,
              data: bytes | None = None, cd_offset: int | None = None, extra: int = 0) -> bytes:
    """A one-member zip (_chat.txt) written field by field, so a test can break exactly one
    thing: the compression method, the flags, the CRC, the data, the length of the local
    extra field (a lie moves the data past the end) or the directory's offset."""
    import struct
    import zlib

    if data is None:
        data = deflate(text) if method == 8 else text
    crc = zlib.crc32(text) if crc is None else crc
    name = b"_chat.txt"
    fields = (20, flags, method, 0, 0, crc, len(data), len(text), len(name))
    local = struct.pack("<4s5HI2I2H", b"PK\x03\x04", *fields, extra) + name + data
    central = struct.pack("<4s6HI2I5H2I", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) if cd_offset is None else cd_offset, 0)
    return local + central + end


def test_the_zip_builder_makes_a_readable_zip():
    text = (OURS / "android_de.txt").read_bytes()
    for method in (0, 8):
        assert parse_export(io.BytesIO(zip_bytes(text, method=method))).equals(
            parse_export(OURS / "android_de.txt"))


TEXT = (OURS / "android_de.txt").read_bytes()


@pytest.mark.parametrize(("archive", "problem"), [
    (zip_bytes(TEXT)[:-30], "not a readable zip"),                         # BadZipFile
    (zip_bytes(TEXT, crc=1), "Bad CRC-32"),                                # BadZipFile
    (zip_bytes(TEXT, data=b"\x07" + bytes(40)), "Error -3"),               # zlib.error
    (zip_bytes(TEXT, extra=5000), "not a readable zip"),                   # EOFError
    (zip_bytes(TEXT, method=99), "compression method"),                    # NotImplementedError
    (zip_bytes(TEXT, cd_offset=10**6), "negative seek"),                   # ValueError
    (zip_bytes(TEXT, method=0, flags=1), "encrypted"),                     # RuntimeError
    (zip_bytes(TEXT, method=12, data=b"BZh9" + bytes(20)), "not a readable zip"),  # OSError
], ids=["cut", "crc", "zlib", "eof", "method", "seek", "encrypted", "bzip2"])
def test_a_damaged_zip_is_a_clean_error(archive, problem, tmp_path):
    path = tmp_path / "WhatsApp Chat.zip"
    path.write_bytes(archive)
    with pytest.raises(ImportFormatError) as caught:
        parse_export(path)
    assert problem in str(caught.value) and str(path) in str(caught.value)
    assert caught.value.path == str(path)


@pytest.mark.parametrize(("data", "line", "problem"), [
    ("01.01.21, 10:00 - Anna: a\n01.01.21, 10:01 - Anna: b\n".encode("utf-16")[:-1], 2,
     "cut off"),
    ("01.01.21, 10:00 - Anna: a\n01.01.21, 10:01 - Anna: \ud800\n".encode("utf-16", "surrogatepass"),
     2, "lone surrogate"),
    ("01.01.21, 10:00 - Anna: a\n01.01.21, 10:01 - Anna: \udc00\n".encode("utf-8", "surrogatepass"),
     2, "lone surrogate"),
], ids=["utf16-cut", "utf16-surrogate", "utf8-surrogate"])
def test_broken_encodings_are_named_with_their_line(data, line, problem, tmp_path):
    path = tmp_path / "chat.txt"
    path.write_bytes(data)
    with pytest.raises(ImportFormatError) as caught:
        parse_export(path)
    assert (caught.value.line, caught.value.path) == (line, str(path))
    assert problem in str(caught.value) and f"line {line}" in str(caught.value)


def test_a_lone_surrogate_in_a_text_stream_is_named():
    with pytest.raises(ImportFormatError, match="lone surrogate") as caught:
        parse_export(io.StringIO("01.01.21, 10:00 - Anna: \ud800\n"))
    assert caught.value.line == 1


def test_a_missing_file_or_a_folder_is_a_clean_error(tmp_path):
    for path, problem in ((tmp_path / "nope.txt", "No such file"), (tmp_path, "Is a directory")):
        with pytest.raises(ImportFormatError, match=problem) as caught:
            parse_export(path)
        assert caught.value.path == str(path)


# -- round trip ----------------------------------------------------------------------

# (header writer, whether it writes seconds, day-first)
def _android_en(at: datetime) -> str:
    return f"{at.month}/{at.day}/{at:%y}, {at:%H:%M} - "


def _android_de(at: datetime) -> str:
    return f"{at:%d.%m.%y, %H:%M} - "


def _android_us_12h(at: datetime) -> str:
    return f"{at.month}/{at.day}/{at:%y}, {at.hour % 12 or 12}:{at:%M}{NNBSP}{at:%p} - "


def _android_es_12h(at: datetime) -> str:
    return f"{at:%d/%m/%Y}, {at.hour % 12 or 12}:{at:%M} {'a. m.' if at.hour < 12 else 'p. m.'} - "


def _ios_de(at: datetime) -> str:
    return f"[{at:%d.%m.%y, %H:%M:%S}] "


def _ios_en_12h(at: datetime) -> str:
    return f"[{at.month}/{at.day}/{at:%y}, {at.hour % 12 or 12}:{at:%M:%S}{NNBSP}{at:%p}] "


def _iso(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} - "


LAYOUTS = {
    "android_en": (_android_en, False, False), "android_de": (_android_de, False, True),
    "android_us_12h": (_android_us_12h, False, False), "android_es_12h": (_android_es_12h, False, True),
    "ios_de": (_ios_de, True, True), "ios_en_12h": (_ios_en_12h, True, False),
    "iso": (_iso, False, True),
}
HEADERISH = re.compile(r"^\s*[\[\d]")  # keep text lines from looking like a header

words = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"),
                              exclude_characters="\u2028\u2029\x85:[]<>"), min_size=1, max_size=20)
names = words.map(str.strip).filter(bool)
line_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Cf")),
                    max_size=40).filter(lambda s: not HEADERISH.match(s))
bodies = st.lists(line_text, min_size=1, max_size=4).map("\n".join).map(str.strip).filter(
    lambda s: s and not HEADERISH.match(s))


@st.composite
def chats(draw):
    layout = draw(st.sampled_from(sorted(LAYOUTS)))
    with_seconds = LAYOUTS[layout][1]
    at = draw(st.datetimes(min_value=datetime(2009, 1, 1), max_value=datetime(2035, 1, 1)))
    messages = []
    for _ in range(draw(st.integers(1, 8))):
        at += timedelta(seconds=draw(st.integers(0, 90 * 86400)))
        at = at.replace(microsecond=0) if with_seconds else at.replace(second=0, microsecond=0)
        author = draw(st.none() | names) if layout.startswith("android") else draw(names)
        text = draw(words.map(str.strip).filter(bool)) if author is None else draw(bodies)
        messages.append((at, author, text))
    return layout, messages


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chats())
def test_round_trip(chat):
    layout, messages = chat
    header, _, dayfirst = LAYOUTS[layout]
    text = "".join(header(at) + (f"{author}: {body}" if author else body) + "\n"
                   for at, author, body in messages)
    df = parse_export(io.StringIO(text), dayfirst=dayfirst)
    check_contract(df)
    kinds_ok = df["kind"].isin(["text", "system"])
    assume(kinds_ok.all())  # a random text that happens to be a placeholder is fine too
    def spaced(value):  # no-break spaces are read as plain spaces
        return value if value is None else value.replace("\u00a0", " ").replace(NNBSP, " ")

    expected = [(T(at), spaced(author), "system" if author is None else "text", spaced(body))
                for at, author, body in messages]
    assert rows(df) == expected
    # With a day above 12 somewhere, the order is found without help.
    days = [at.day for at, _, _ in messages]
    if layout != "iso" and max(days) > 12:
        assert parse_export(io.StringIO(text))["timestamp"].equals(df["timestamp"])
