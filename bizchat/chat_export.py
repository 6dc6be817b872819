"""WhatsApp "Export chat" text files: read one into a DataFrame of messages.

``parse_export(source, dayfirst=None)`` reads the ``.txt`` file that WhatsApp writes with
*Chat > More > Export chat* (or the ``.zip`` around it) on Android or iOS, in any language
whose header uses digits, and returns one row per message.

The DataFrame contract (columns in this order, exactly these dtypes)::

    timestamp  datetime64[us]   naive, the wall-clock time as written in the file (the
                                export carries no time zone; the importer decides one)
    author     string           the name or number as written; <NA> for system lines
    text       string           the message; lines of a multi-line message are joined
                                with "\\n" (blank lines kept); leading/trailing whitespace,
                                U+200E/U+200F marks and the "<This message was edited>"
                                marker removed; U+00A0 and U+202F become plain spaces
    kind       string           "text", "media", "system" or "deleted"
    edited     bool             the message carried an edited marker
    line       int64            1-based line number of the message's header in the file

Rows are in file order (not sorted). An empty (or whitespace-only) file gives an empty
frame with these columns. ``kind`` is decided like this:

* ``system``: a line without ``Name: `` after the header (``X created group``, ``X added
  Y``, the Android encryption notice ...); an iOS line whose text starts with a U+200E
  mark and is not a media or deleted placeholder (iOS writes the group or contact name
  before its system texts); any line whose text is the end-to-end encryption notice.
  The author of a system line is always <NA>; the text keeps the whole line.
* ``media``: the whole text is a placeholder such as ``<Media omitted>``, ``image
  omitted``, ``Bild weggelassen``, ``<attached: 0001-PHOTO-....jpg>``, ``<Anhang: ...>``,
  ``file.pdf • 3 pages document omitted`` (the text is kept as written).
* ``deleted``: ``This message was deleted``, ``You deleted this message``, ``Diese
  Nachricht wurde gelöscht.``, ``Du hast diese Nachricht gelöscht.``.

Header layouts: ``12/31/20, 23:59 - Name: text`` (Android) and ``[31.12.20, 23:59:59]
Name: text`` (iOS), with ``/ . -`` date separators, two- or four-digit years, year-first
dates, 24-hour or 12-hour clocks (``11:59 PM``, ``11:59 pm``, ``11:59 p. m.``) and
optional seconds. Each header is read on its own, so a file that mixes layouts still
parses. Whether ``03/04/21`` is day-first is decided for the whole file: a first field
above 12 means day-first, a second field above 12 month-first; if every date is
ambiguous, the order under which the timestamps run forward (then: with the smaller
gaps) wins, and if both are equal, day-first unless the file uses ``/`` with a 12-hour
clock (the US layout). ``dayfirst=True/False`` forces the order.

Limits: a continuation line that looks exactly like a header starts a new message (every
parser of this format shares this); a system line whose text contains ``": "`` (a group
subject with a colon) reads as a message by the part before the colon.

Speed: the file is read once as bytes and never becomes Python strings per line. Line
starts come from one numpy scan for newlines; one compiled header pattern (RE2, matched by
pyarrow over all lines at once) marks the header lines; byte positions of the separators
(pyarrow ``find_substring``) cut each message into date, author and text as zero-copy
slices of the file buffer; dates are read from the digits with numpy. No per-message
Python code runs, which keeps a million-message export around a second.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ImportFormatError

__all__ = ["COLUMNS", "KINDS", "empty_frame", "parse_export"]

COLUMNS = ("timestamp", "author", "text", "kind", "edited", "line")
KINDS = ("text", "media", "system", "deleted")

_STRING = pd.StringDtype("pyarrow")
_TEXT = pa.large_string()  # 64-bit offsets: an export may pass 2 GB
_MARKS = "\u200e\u200f"  # left-to-right / right-to-left marks
_BLANK = " \t\n" + _MARKS

# A message header at the start of a line, up to the space before the name or text.
# RE2 syntax (pyarrow); the same digits are read again with numpy in _fields().
_DATETIME = (
    r"\d{1,4}[./-] ?\d{1,2}[./-] ?\d{1,4}\.?,? "    # 31.12.20, | 12/31/2020 | 2020-12-31
    r"\d{1,2}[:.]\d{2}(?:[:.]\d{2})?"                # 23:59 | 23:59:59 | 23.59
    r"(?: ?[AaPp]\.? ?[Mm]\.?)?\.?"                  # PM | pm | p. m. | p.m. ; "13:34."
)
_EN_DASH = "\u2013"  # some locales write "31.12.20, 23:59 – Name: text"
_HEADER = rf"^[{_MARKS}]*(?:\[[{_MARKS}]*{_DATETIME}\]|{_DATETIME} [-{_EN_DASH}]) "

_ATTACHMENT = r"(?i:image|video|audio|sticker|GIF|document|contact card|bild|dokument|kontaktkarte)"
# Placeholders and notices. Each pattern is anchored at the start or at the end only, so
# RE2 decides most texts after a few bytes; the rare candidates are then sorted out by
# the exact patterns below.
_AT_START = (
    r"^(?:<[^<>\n]*(?:omitted|ausgeschlossen|weggelassen)>$"
    rf"|{_ATTACHMENT} (?:omitted|weggelassen)$"
    r"|<(?:attached|Anhang): "
    r"|(?:This message was deleted|You deleted this message"
    r"|Diese Nachricht wurde gelöscht|Du hast diese Nachricht gelöscht)\.?$"
    r"|Messages and calls are end-to-end encrypted"
    r"|Messages to this (?:group|chat) are now secured with end-to-end encryption"
    r"|Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt"
    r"|Nachrichten (?:an diese Gruppe|in diesem Chat) sind jetzt mit Ende-zu-Ende-Verschl"
    r"|This business (?:uses a secure service|works with other companies)"
    r"|Dieses Unternehmen (?:nutzt einen sicheren Service|arbeitet mit anderen))"
)
_AT_END = (
    r"(?:\.\w{1,6}(?: • [^\n]*)? (?:document omitted|Dokument weggelassen)"
    r"|\.\w{1,6} \((?:file attached|Datei angehängt)\)"
    r"|<(?:This message was edited|Diese Nachricht wurde bearbeitet)>)$"
)
_MEDIA = (
    r"(?s)^(?:<[^<>\n]*(?:omitted|ausgeschlossen|weggelassen)>"
    rf"|{_ATTACHMENT} (?:omitted|weggelassen)"
    r"|[^\n]+\.\w{1,6}(?: • [^\n]*)? (?:document omitted|Dokument weggelassen)"
    r"|[^\n]+\.\w{1,6} \((?:file attached|Datei angehängt)\)"
    r")$|^<(?:attached|Anhang): [^<>\n]+>"
)
_DELETED = (
    r"^(?:This message was deleted|You deleted this message"
    r"|Diese Nachricht wurde gelöscht|Du hast diese Nachricht gelöscht)\.?$"
)
_NOTICE = r"^(?:Messages|Nachrichten|This business|Dieses Unternehmen) "  # after _AT_START
_EDITED = r"\s*<(?:This message was edited|Diese Nachricht wurde bearbeitet)>$"


def parse_export(source: str | os.PathLike | IO, dayfirst: bool | None = None) -> pd.DataFrame:
    """Read a WhatsApp chat export into a DataFrame (see the module docstring for the contract).

    ``source`` is a path (``str``/``PathLike``; a ``.txt`` export or the ``.zip`` holding
    it) or an open text or binary stream. ``dayfirst`` forces how ``03/04/21`` is read;
    ``None`` detects it from the whole file. Raises ``ImportFormatError`` (naming the file
    and the first bad line) when the file is not a chat export or a date is impossible.
    """
    name, data = _read_bytes(source)
    return _parse(*_normalise(data), name, dayfirst)


def empty_frame() -> pd.DataFrame:
    """A frame with no rows and exactly the contract's columns and dtypes."""
    return pd.DataFrame({
        "timestamp": pd.Series([], dtype="datetime64[us]"),
        "author": pd.Series([], dtype=_STRING),
        "text": pd.Series([], dtype=_STRING),
        "kind": pd.Series([], dtype=_STRING),
        "edited": pd.Series([], dtype=bool),
        "line": pd.Series([], dtype="int64"),
    })


# -- reading -------------------------------------------------------------------------

def _read_bytes(source) -> tuple[str, bytes]:
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open(name, "rb") as fh:
            data = fh.read()
    else:
        name = str(getattr(source, "name", None) or "<stream>")
        data = source.read()
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
    if data[:4] == b"PK\x03\x04":  # iOS shares the export as a zip with _chat.txt inside
        name, data = _unzip(name, data)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        data = data.decode("utf-16").encode("utf-8")
    return name, data.removeprefix(b"\xef\xbb\xbf")


def _unzip(name: str, data: bytes) -> tuple[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        texts = [m for m in zf.namelist() if m.lower().endswith(".txt")]
        chosen = [m for m in texts if os.path.basename(m) == "_chat.txt"] or texts
        if len(chosen) != 1:
            raise ImportFormatError(
                f"{name}: the zip holds {len(texts)} .txt files ({', '.join(texts[:5]) or 'none'}); "
                "expected one chat export. Unzip it and pass the chat's .txt file.",
                path=name, line=None, input=None)
        return f"{name}!{chosen[0]}", zf.read(chosen[0])


def _normalise(data: bytes) -> tuple[bytes, np.ndarray, bool]:
    """CR LF to LF, no-break spaces to spaces; also where the U+200E/U+200F marks are and
    whether an en dash occurs (one numpy scan finds all three-byte punctuation)."""
    if b"\r" in data:  # memchr
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\xc2\xa0" in data:  # U+00A0; rare in chats, so the search is quick
        data = data.replace(b"\xc2\xa0", b" ")
    for _ in range(2):
        raw = np.frombuffer(data, np.uint8)
        lead = np.flatnonzero(raw[:-2] == 0xE2)  # U+2000..U+2FFF
        lead = lead[raw[lead + 1] == 0x80]
        third = raw[lead + 2]
        if not (third == 0xAF).any():  # U+202F narrow no-break space (iOS, before AM/PM)
            break
        data = data.replace("\u202f".encode(), b" ")
    marks = lead[(third == 0x8E) | (third == 0x8F)]
    return data, marks, bool((third == 0x93).any())


def _not_utf8(name: str, data: bytes) -> ImportFormatError:
    try:
        data.decode("utf-8")
        start = 0
    except UnicodeDecodeError as exc:
        start = exc.start
    line_no = data.count(b"\n", 0, start) + 1
    first = data.rfind(b"\n", 0, start) + 1
    end = data.find(b"\n", start)
    excerpt = data[first:end if end >= 0 else len(data)][:80].decode("utf-8", "replace")
    return ImportFormatError(
        f"{name}: line {line_no} is not UTF-8 text ({excerpt!r}); this does not look like a "
        "WhatsApp chat export. Export the chat again (Chat > More > Export chat) and pass "
        "the .txt file.",
        path=name, line=line_no, input=excerpt)


def _not_header(name: str, line_no: int, line: str) -> ImportFormatError:
    excerpt = line.rstrip("\n")[:80]
    return ImportFormatError(
        f"{name}: line {line_no} is not a WhatsApp message header ({excerpt!r}); expected a "
        "line like '31.12.20, 23:59 - Name: text' or '[31.12.20, 23:59:59] Name: text'. "
        "Export the chat again (Chat > More > Export chat, without editing the file) and "
        "pass the .txt file.",
        path=name, line=line_no, input=excerpt)


# -- parsing -------------------------------------------------------------------------

def _strings(offsets: np.ndarray, buf: pa.Buffer) -> pa.Array:
    """Zero-copy string array whose i-th value is buf[offsets[i]:offsets[i+1]]."""
    return pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(np.ascontiguousarray(offsets, np.int64)), buf)


def _np(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def _skip_marks(raw: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Move each position past any U+200E/U+200F (bytes E2 80 8E/8F) that start there."""
    at = at.copy()
    rows = np.flatnonzero(raw[np.minimum(at, len(raw) - 1)] == 0xE2)
    while rows.size:
        p = at[rows]
        rows, p = rows[p <= len(raw) - 3], p[p <= len(raw) - 3]
        mark = (raw[p + 1] == 0x80) & ((raw[p + 2] == 0x8E) | (raw[p + 2] == 0x8F))
        rows = rows[mark & (raw[p] == 0xE2)]
        at[rows] += 3
    return at


def _parse(data: bytes, marks: np.ndarray, en_dash: bool, name: str,
           dayfirst: bool | None) -> pd.DataFrame:
    buf = pa.py_buffer(data)
    try:
        _strings(np.array([0, len(data)]), buf).validate(full=True)
    except pa.ArrowInvalid:
        raise _not_utf8(name, data) from None
    raw = np.frombuffer(data, np.uint8)
    line_offsets = np.concatenate(([0], np.flatnonzero(raw == 10) + 1, [len(data)]))
    lines = _strings(line_offsets, buf)
    idx = np.flatnonzero(_np(pc.match_substring_regex(lines, _HEADER)))
    head_end = int(idx[0]) if idx.size else len(lines)
    blank = _np(pc.equal(pc.utf8_length(pc.utf8_trim(lines.slice(0, head_end), _BLANK)), 0))
    if not blank.all():
        first_bad = int(np.argmin(blank))
        raise _not_header(name, first_bad + 1, lines[first_bad].as_py())
    if not idx.size:
        return empty_frame()

    # Byte positions, per message, of: line start | first space (inside the date) | end of
    # the date | start of author | end of author | start of text. find_substring gives the
    # first hit on a line, and the date part holds neither "] ", " - " nor ": ", so each
    # first hit is the separator.
    starts, ends = line_offsets[idx], line_offsets[idx + 1]
    eol = ends - (raw[ends - 1] == 10)

    def first(needle: str) -> np.ndarray:
        return _np(pc.find_substring(lines, needle))[idx]

    def skip_marks(at: np.ndarray) -> np.ndarray:
        return _skip_marks(raw, at) if marks.size else at

    bracketed = raw[skip_marks(starts)] == ord("[")
    date_end = np.zeros_like(starts)
    if bracketed.any():
        date_end = np.where(bracketed, starts + first("] "), date_end)
    sep_len = np.full_like(starts, 2)
    if not bracketed.all():
        dash = first(" - ")
        if en_dash:
            en = first(f" {_EN_DASH} ")
            use_en = (dash < 0) | ((en >= 0) & (en < dash))
            dash = np.where(use_en, en, dash)
            sep_len = np.where(bracketed, 2, np.where(use_en, 5, 3))
        else:
            sep_len = np.where(bracketed, 2, 3)
        date_end = np.where(bracketed, date_end, starts + dash)
    name_start = skip_marks(date_end + sep_len)
    colon = starts + first(": ")
    colon_space = (colon >= starts) & (colon > name_start)
    colon_eol = ~colon_space & (eol - 1 > name_start) & (raw[eol - 1] == ord(":"))
    has_author = colon_space | colon_eol
    name_end = np.where(colon_space, colon, np.where(colon_eol, eol - 1, name_start))
    text_start = np.where(colon_space, colon + 2, np.where(colon_eol, eol, name_start))
    marked = skip_marks(text_start)
    # iOS starts generated texts (system lines, placeholders) with U+200E.
    flagged = has_author & (marked > text_start) & (raw[np.minimum(text_start + 2, len(raw) - 1)] == 0x8E)
    text_start = marked
    space = starts + first(" ")  # splits the date from the time, see _fields()

    n = len(idx)
    bounds = np.column_stack([starts, space, date_end, name_start, name_end, text_start])
    pieces = _strings(np.concatenate(([0], bounds.ravel(), [len(data)])), buf)

    def column(k: int) -> pa.Array:
        return pieces.take(pa.array(np.arange(1 + k, 1 + 6 * n, 6)))

    lines_no = idx.astype(np.int64) + 1
    timestamps = _timestamps(column(0), column(1), lines_no, name, dayfirst)
    authors, texts = column(3), column(5)
    if marks.size:  # strip the marks from the few names and texts that still hold some
        marks = marks[marks >= starts[0]]
        at = np.searchsorted(starts, marks, side="right") - 1
        in_name = (marks >= name_start[at]) & (marks < name_end[at])
        authors = _patch(authors, np.unique(at[in_name]), f"[{_MARKS}]")
        texts = _patch(texts, np.unique(at[marks >= text_start[at]]), f"[{_MARKS}]")
    texts = pc.utf8_trim_whitespace(texts)
    kinds, is_system, edited, texts = _classify(has_author, flagged, texts)
    authors = pc.if_else(pa.array(~is_system), authors, pa.scalar(None, _TEXT))

    return pd.DataFrame({
        "timestamp": timestamps,
        "author": pd.array(authors, dtype=_STRING),
        "text": pd.array(texts, dtype=_STRING),
        "kind": pd.array(kinds, dtype=_STRING),
        "edited": edited,
        "line": lines_no,
    })


def _patch(values: pa.Array, rows: np.ndarray, pattern: str) -> pa.Array:
    """Remove ``pattern`` (a regex) from the given rows only; the other rows stay shared."""
    if not rows.size:
        return values
    fixed = pc.replace_substring_regex(values.take(pa.array(rows)), pattern, "")
    mask = np.zeros(len(values), bool)
    mask[rows] = True
    return pc.replace_with_mask(values, pa.array(mask), fixed)


def _classify(has_author: np.ndarray, flagged: np.ndarray, texts: pa.Array):
    """Kinds, system mask and edited flags; the edited markers come off the texts."""
    n = len(texts)
    media, deleted, notice, edited = (np.zeros(n, bool) for _ in range(4))
    ends = np.flatnonzero(_np(pc.match_substring_regex(texts, _AT_END)))
    if ends.size:
        tail = texts.take(pa.array(ends))
        edited[ends] = _np(pc.match_substring_regex(tail, _EDITED))
        texts = _patch(texts, np.flatnonzero(edited), _EDITED)
    candidates = np.union1d(np.flatnonzero(_np(pc.match_substring_regex(texts, _AT_START))),
                            ends[~edited[ends]])
    if candidates.size:
        some = texts.take(pa.array(candidates))
        media[candidates] = _np(pc.match_substring_regex(some, _MEDIA))
        deleted[candidates] = _np(pc.match_substring_regex(some, _DELETED)) & ~media[candidates]
        notice[candidates] = _np(pc.match_substring_regex(some, _NOTICE)) & ~media[candidates]
    is_system = ~has_author | (flagged & ~media & ~deleted) | notice
    kinds = np.select([is_system, deleted, media], ["system", "deleted", "media"], "text")
    return pa.array(kinds, _TEXT), is_system, edited, texts


# -- timestamps ----------------------------------------------------------------------

def _digits(part: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: up to six digit runs (padded with 0), their count, and a/p clock letters.

    A chat has few distinct dates and at most 86,400 distinct times of day, so the part
    is dictionary-encoded and only the distinct strings are read, all at once with numpy.
    """
    encoded = pc.dictionary_encode(part)
    rows = _np(encoded.indices).astype(np.intp)
    distinct = encoded.dictionary
    offsets = np.frombuffer(distinct.buffers()[1], np.int64)[
        distinct.offset:distinct.offset + len(distinct) + 1]
    data = np.frombuffer(distinct.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    offsets = offsets - offsets[0]
    value = data - np.uint8(48)  # wraps around for everything below "0"
    digit = value < 10
    first_byte, last_byte = offsets[:-1], offsets[1:] - 1  # every part is non-empty
    start = digit.copy()
    start[1:] &= ~digit[:-1]
    start[first_byte] = digit[first_byte]  # a run never crosses from one string into the next
    end = digit.copy()
    end[:-1] &= ~digit[1:]
    end[last_byte] = digit[last_byte]
    run_start, run_end = np.flatnonzero(start), np.flatnonzero(end)
    numbers = value[run_start].astype(np.int64)
    top = max(len(value) - 1, 0)
    for k in (1, 2, 3):  # the header pattern allows at most four digits per run
        numbers = np.where(run_end - run_start >= k,
                           numbers * 10 + value[np.minimum(run_start + k, top)], numbers)
    before = np.concatenate(([0], np.cumsum(start)))[offsets]
    count, first = np.diff(before), before[:-1]
    last = max(len(numbers) - 1, 0)
    runs = np.zeros((len(distinct), 6), np.int64)
    for j in range(6):
        runs[:, j] = np.where(count > j, numbers[np.minimum(first + j, last)], 0)
    letters = data | 0x20  # ASCII lower case; header parts hold no other a or p

    def has(letter: str) -> np.ndarray:
        return np.diff(np.concatenate(([0], np.cumsum(letters == ord(letter))))[offsets]) > 0

    return runs[rows], count[rows], has("a")[rows], has("p")[rows]


def _fields(dates: pa.Array, times: pa.Array) -> tuple[np.ndarray, ...]:
    """Read the header fields: the three date numbers, hour, minute, second, a.m./p.m."""
    d_runs, d_count, _, _ = _digits(dates)
    t_runs, t_count, am, pm = _digits(times)
    if (d_count == 3).all():  # the usual case: "31.12.20," then "23:59:59"
        a, b, c = d_runs[:, 0], d_runs[:, 1], d_runs[:, 2]
        rest = t_runs
    else:  # e.g. "2020. 12. 31. 10:00", split at its first space: shift the time runs in
        merged = np.zeros((len(d_runs), 6), np.int64)
        rows = np.arange(len(d_runs))
        for j in range(6):
            from_date = j < d_count
            merged[:, j] = np.where(from_date, d_runs[:, min(j, 5)],
                                    t_runs[rows, np.clip(j - d_count, 0, 5)])
        a, b, c = merged[:, 0], merged[:, 1], merged[:, 2]
        rest = merged[:, 3:]
    count = d_count + t_count
    return a, b, c, rest[:, 0], rest[:, 1], rest[:, 2], am, pm, count


def _timestamps(dates: pa.Array, times: pa.Array, lines: np.ndarray, name: str,
                dayfirst: bool | None) -> np.ndarray:
    a, b, c, hour, minute, second, am, pm, count = _fields(dates, times)
    # 12-hour clock: "13:37 p.m." occurs in the wild and means 13:37.
    hour = np.where(pm & (hour < 12), hour + 12, np.where(am & (hour == 12), 0, hour))
    yearfirst = a > 31
    year = np.where(yearfirst, a, c)
    year = np.where(year < 100, year + 2000, year)

    def build(day_first: bool) -> tuple[np.ndarray, np.ndarray]:
        month = np.where(yearfirst, b, b if day_first else a)
        day = np.where(yearfirst, c, a if day_first else b)
        values, valid = _compose(year, month, day, hour, minute, second)
        return values, valid & ((count == 5) | (count == 6))

    def shown(i: int) -> str:
        return (dates[i].as_py() + times[i].as_py()).strip(_BLANK + "[")

    if dayfirst is None:
        dayfirst = _detect_dayfirst(a, b, yearfirst, lines, name, build, shown)
    values, valid = build(dayfirst)
    if not valid.all():
        i = int(np.argmin(valid))
        order = "day-first" if dayfirst else "month-first"
        raise ImportFormatError(
            f"{name}: line {lines[i]}: {shown(i)!r} is not a valid {order} date and time. "
            f"Pass dayfirst={not dayfirst} if the file writes "
            f"{'months' if dayfirst else 'days'} first, or fix that line.",
            path=name, line=int(lines[i]), input=shown(i))
    return values


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _compose(year, month, day, hour, minute, second) -> tuple[np.ndarray, np.ndarray]:
    """Build datetime64[us] from integer fields; also say which rows were real dates."""
    month_ok = (month >= 1) & (month <= 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.where(month_ok, month, 0)] + (leap & (month == 2))
    valid = (month_ok & (day >= 1) & (day <= month_days) & (hour <= 23) & (minute <= 59)
             & (second <= 59) & (year >= 1970) & (year <= 2999))
    # Days since 1970-01-01 from the civil date (the proleptic Gregorian count, with the
    # year starting in March so that the leap day comes last).
    y = year - (month <= 2)
    shifted = (month + 9) % 12
    day_of_year = (153 * shifted + 2) // 5 + day - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 + day_of_year - 719468
    seconds = np.where(valid, days * 86400 + hour * 3600 + minute * 60 + second, 0)
    return (seconds * 1_000_000).astype("datetime64[us]"), valid


def _detect_dayfirst(a, b, yearfirst, lines, name, build, shown) -> bool:
    day_a, day_b = ~yearfirst & (a > 12), ~yearfirst & (b > 12)
    if day_a.any() and day_b.any():
        i, j = int(np.argmax(day_a)), int(np.argmax(day_b))
        raise ImportFormatError(
            f"{name}: the file mixes day-first dates (line {lines[i]}: {shown(i)!r}) and "
            f"month-first dates (line {lines[j]}: {shown(j)!r}); one WhatsApp export uses "
            "one order. Split the file, or pass dayfirst= and fix the other lines.",
            path=name, line=int(lines[j]), input=shown(j))
    if day_a.any() or day_b.any():
        return bool(day_a.any())
    # Ambiguous throughout: prefer the order that keeps the chat running forward, then the
    # one with the smaller gaps (a chat is dense in time).
    scores = []
    for candidate in (True, False):
        values, valid = build(candidate)
        steps = np.diff(values[valid].astype(np.int64))
        scores.append((int((steps < 0).sum()), int(np.abs(steps).sum())))
    if scores[0] != scores[1]:
        return scores[0] < scores[1]
    # Still tied (one date, or only dates like 01/01): day-first, except the US layout
    # (slashes and a bare AM/PM; Spanish locales write "p. m." and are day-first).
    us_layout = re.fullmatch(r"\d+/\d+/\d+,? [\d:]+ ?[AaPp][Mm]", shown(0)) is not None
    return not us_layout
