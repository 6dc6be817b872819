"""WhatsApp chat exports: every layout in the shared samples and ours, errors, round trips."""

from __future__ import annotations

import csv
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

from bizchat.chat_export import COLUMNS, KINDS, parse_export
from bizchat.errors import BizchatError, ImportFormatError

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


# -- the shared samples (chat-miner and whatsapp-chat-parser) ------------------------

def shared_exports(shared_fixtures: Path) -> Path:
    return shared_fixtures / "exports"


def as_reference(df: pd.DataFrame) -> list[tuple]:
    """Our rows the way chat-miner writes them: system lines by "System", lines joined
    with spaces."""
    return sorted((r.timestamp, "System" if r.kind == "system" else r.author,
                   r.text.replace("\n", " ")) for r in df.itertuples())


def without_disappearing(df: pd.DataFrame, expected: list[tuple]) -> tuple[pd.DataFrame, list]:
    """chat-miner reads "Name:." (no space after the colon) as Name's message with the text
    "<Disappearing Message>"; bizchat needs ": " after a name and keeps the line as a
    system line. Check that one row by hand and compare the rest."""
    theirs = [row for row in expected if row[2] == "<Disappearing Message>"]
    ours = df[df["text"].str.fullmatch(r".+:\.")]
    mine = ours.sort_values("timestamp").itertuples()
    for (at, author, _), row in zip(sorted(theirs), mine, strict=True):
        assert (row.timestamp, row.kind, row.author is pd.NA, row.text) == (at, "system", True,
                                                                             f"{author}:.")
    return df.drop(ours.index), [row for row in expected if row not in theirs]


def test_every_shared_export_parses(shared_fixtures):
    files = sorted(shared_exports(shared_fixtures).glob("*.txt"))
    assert len(files) >= 12
    for path in files:
        df = parse_export(path)
        check_contract(df)
        assert len(df) > 0 or path.stat().st_size == 0, path.name


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_shared_dateformats_match_their_targets(shared_fixtures, number):
    base = shared_exports(shared_fixtures) / f"joweich__chat-miner@71990a9__test__whatsapp__test_dateformat{number}"
    with open(f"{base}_target.csv", encoding="utf-8", newline="") as fh:
        expected = sorted((T(r["timestamp"]), r["author"], r["message"]) for r in csv.DictReader(fh))
    df = parse_export(f"{base}.txt")
    df, expected = without_disappearing(df, expected)
    assert as_reference(df) == expected


def test_shared_unicode_matches_its_target(shared_fixtures):
    base = shared_exports(shared_fixtures) / "joweich__chat-miner@71990a9__test__whatsapp__test_unicode"
    with open(f"{base}_target.csv", encoding="utf-8", newline="") as fh:
        expected = sorted((T(r["timestamp"]), r["author"], r["message"]) for r in csv.DictReader(fh))
    df = parse_export(f"{base}.txt")
    assert as_reference(df) == expected
    assert df["text"].iloc[0] == "Testing abnormal unicode"  # U+00A0 became a space


@pytest.mark.parametrize("layout", ["[mmddyy]_24hrs", "ddmmyy_24hrs", "mmddyy_24hrs",
                                    "mmddyyyy_12hrs", "yyyymmdd_24hrs"])
def test_shared_layouts_match_the_json_target(shared_fixtures, layout):
    folder = shared_exports(shared_fixtures)
    target = json.loads((folder / "joweich__chat-miner@17c52a1__test__whatsapp__target.json")
                        .read_text(encoding="utf-8"))
    expected = sorted((T(r["timestamp"]), r["author"], r["message"]) for r in target)
    df = parse_export(folder / f"joweich__chat-miner@17c52a1__test__whatsapp__test_{layout}.txt")
    # That target leaves out the system lines (and the "Name:." line, a system line here).
    assert as_reference(df[df["kind"] != "system"]) == expected
    assert df.loc[df["kind"] == "system", "text"].tolist() == [
        "John Doe:.", '+12 345 578 created group "Groupname"', "You were added"]


def test_shared_mixed_layout_log_matches_its_target(shared_fixtures):
    folder = shared_exports(shared_fixtures)
    lines = (folder / "joweich__chat-miner@a7e9d8c__test__whatsapp__target.json").read_text(
        encoding="utf-8").splitlines()
    expected = sorted((T(r["datetime"], unit="ms"), r["author"], r["message"])
                      for r in map(json.loads, lines))
    df = parse_export(folder / "joweich__chat-miner@a7e9d8c__test__whatsapp__testlog.txt")
    assert as_reference(df) == expected


def test_shared_short_chat(shared_fixtures):
    df = parse_export(shared_exports(shared_fixtures)
                      / "Pustur__whatsapp-chat-parser@75f11bd__samples__short-chat.txt")
    # Every date is ambiguous; only month-first keeps the chat running forward.
    assert rows(df) == [
        (T("2017-06-03 00:45"), None, "system",
         "Messages to this group are now secured with end-to-end encryption. Tap for more info."),
        (T("2017-06-03 00:45"), None, "system", 'You created group "ShortChat"'),
        (T("2017-06-03 00:45"), "Sample User", "text", "This is a test message"),
        (T("2017-08-05 01:48"), "TestBot", "text", "Hey I'm a test too!"),
        (T("2017-09-04 01:50"), "+410123456789", "text", "How are you?\n\nIs everything alright?"),
    ]
    assert df["line"].tolist() == [1, 2, 3, 4, 5]


def test_shared_empty_file_gives_an_empty_frame(shared_fixtures):
    df = parse_export(shared_exports(shared_fixtures)
                      / "Pustur__whatsapp-chat-parser@75f11bd__samples__empty.txt")
    assert df.empty
    check_contract(df)


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
