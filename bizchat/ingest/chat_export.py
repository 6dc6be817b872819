"""WhatsApp "Export chat" text files: read one into a DataFrame of messages.

``parse_export(source, dayfirst=None)`` reads the ``.txt`` file that WhatsApp writes with
*Chat > More > Export chat* on Android or iOS (or the ``.zip`` iOS shares, with
``_chat.txt`` inside), in any language whose header uses digits, and returns one row
per message. ``source`` is a path or an open text or binary stream; the bytes must be
UTF-8 (UTF-16 with a BOM is accepted). ``bizchat.parse_export`` is this function.

The DataFrame contract (exactly these columns, in this order, with these dtypes)::

    timestamp  datetime64[us]  naive wall-clock time as written in the file (an export
                               carries no time zone; the importer decides one)
    author     string          name or number as written (marks removed); <NA> on
                               system lines
    text       string          the message; the lines of a multi-line message joined with
                               "\n" (blank lines kept), trimmed; invisible marks (see
                               below) and the edited marker removed; U+00A0/U+202F read
                               as spaces
    kind       string          "text", "media", "system" or "deleted"
    edited     bool            the message ended in "<This message was edited>" or
                               "<Diese Nachricht wurde bearbeitet>"
    line       int64           1-based line number of the message's header in the file

``string`` is ``pd.StringDtype("pyarrow")`` (missing values are ``pd.NA``). Rows come in
file order, not sorted. An empty or whitespace-only file gives a frame with no rows and
these columns (``empty_frame()``). ``kind``:

* ``system``: a line with no ``Name: `` after the header (``X created group``, ``X added
  Y``, the Android encryption notice ...); an iOS (bracketed) line whose text starts with
  U+200E, is no placeholder, and whose author writes nothing but such lines (iOS writes
  the chat's name before its system texts); any text that is the end-to-end encryption or
  business notice. Its author is always <NA>. A line by a person who also writes ordinary
  lines is never a system line, so a customer's ``\u200eSTOP`` stays their message; on
  Android a U+200E before a text means nothing.
* ``media``: the whole text is a placeholder, kept as written: ``<Media omitted>``,
  ``<Medien ausgeschlossen>``, ``image omitted``, ``Bild weggelassen`` (video, audio,
  sticker, GIF, document, contact card), ``<attached: 00000012-PHOTO-....jpg>``,
  ``<Anhang: ...>``, ``file.pdf • 3 pages document omitted``, ``x.pdf (file attached)``.
* ``deleted``: ``This message was deleted``, ``You deleted this message``, ``Diese
  Nachricht wurde gelöscht.``, ``Du hast diese Nachricht gelöscht.``.

Headers: ``12/31/20, 23:59 - Name: text`` (Android) and ``[31.12.20, 23:59:59] Name:
text`` (iOS), with ``/ . -`` date separators, two-digit (20yy) or four-digit years,
year-first dates, 24-hour or 12-hour clocks (``11:59 PM``, ``11:59 pm``, ``11:59 p. m.``),
with or without seconds. Invisible marks may stand anywhere and are removed first: U+FEFF
(also at line starts or after ``[``), U+200E/U+200F, U+202A-U+202E (around numbers) and
U+2066-U+2069 (around names). Each header is read on its own, so a file that mixes
layouts still parses. Whether ``03/04/21`` is day-first is decided for
the whole file: a first field above 12 means day-first, a second field above 12
month-first (both in one file is an error); if every date is ambiguous, the order under
which the chat runs forward wins, then the one with the smaller gaps, then day-first
unless the file writes ``/`` with a bare AM/PM (the US layout). ``dayfirst=True/False``
forces the order.

Errors: ``ImportFormatError`` (a ``ValueError``) with ``path``, ``line`` and ``input``
when the file cannot be read, a zip is damaged (cut off, bad CRC or data, unsupported
compression, encrypted), the UTF-16 text is cut off or the text holds a lone surrogate,
the first non-blank line is not a header, the bytes are not UTF-8, a date or time is
impossible under the chosen order (or before 1970), or day-first and month-first dates
are mixed. Nothing else escapes (a hypothesis fuzz test over mutated files checks it).

Limits: a continuation line that looks exactly like a header starts a new message (the
format has no escaping); a system line whose text contains ``": "`` (a group subject
with a colon) reads as a message by the part before the colon; in a 1:1 iOS chat, iOS
writes notices other than the encryption notice (``You blocked this contact``) under the
customer's name, so they read as the customer's messages.

Reading the bytes (paths, streams, zips, UTF-16, the invisible marks) is export_bytes.py.

Speed: the file stays one bytes buffer; there is no Python code per line or message.
A numpy scan finds the line starts, one RE2 pattern (pyarrow) marks the header lines,
``find_substring`` gives the separators' byte positions, the date, author and text are
cut from the buffer at those positions, and dates and times are read from their few
distinct strings with numpy. A million messages take about a second.
"""

from __future__ import annotations

import os
import re
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ImportFormatError
from .export_bytes import normalise, not_utf8, positions, read_bytes

__all__ = ["COLUMNS", "KINDS", "empty_frame", "parse_export"]

COLUMNS = ("timestamp", "author", "text", "kind", "edited", "line")
KINDS = ("text", "media", "system", "deleted")

_STRING = pd.StringDtype("pyarrow")
_TEXT = pa.large_string()  # 64-bit offsets: an export may pass 2 GB
_KIND_NAMES = pa.array(KINDS, _TEXT)
_BLANK = " \t\n"

# A message header at the start of a line, up to the space before the name or text.
# RE2 syntax (pyarrow); the same digits are read again with numpy in _fields().
_DATETIME = (
    r"\d{1,4}[./-] ?\d{1,2}[./-] ?\d{1,4}\.?,? "    # 31.12.20, | 12/31/2020 | 2020-12-31
    r"\d{1,2}[:.]\d{2}(?:[:.]\d{2})?"                # 23:59 | 23:59:59 | 23.59
    r"(?: ?[AaPp]\.? ?[Mm]\.?)?\.?"                  # PM | pm | p. m. | p.m. ; "13:34."
)
_EN_DASH = "\u2013"  # some locales write "31.12.20, 23:59 – Name: text"
_HEADER = rf"^(?:\[{_DATETIME}\]|{_DATETIME} [-{_EN_DASH}]) "

# What WhatsApp writes in place of a message, in English and German.
_ATTACHMENT = r"(?i:image|video|audio|sticker|GIF|document|contact card|bild|dokument|kontaktkarte)"
_PLACEHOLDER = (rf"<[^<>\n]*(?:omitted|ausgeschlossen|weggelassen)>"
                rf"|{_ATTACHMENT} (?:omitted|weggelassen)")
_ATTACHED = r"<(?:attached|Anhang): "  # iOS: <attached: 00000012-PHOTO-....jpg>
_FILE = (r"\.\w{1,6}(?: • [^\n]*)? (?:document omitted|Dokument weggelassen)"
         r"|\.\w{1,6} \((?:file attached|Datei angehängt)\)")
_DELETED_TEXT = (r"(?:This message was deleted|You deleted this message"
                 r"|Diese Nachricht wurde gelöscht|Du hast diese Nachricht gelöscht)\.?")
_NOTICE_TEXT = (
    r"Messages and calls are end-to-end encrypted"
    r"|Messages to this (?:group|chat) are now secured with end-to-end encryption"
    r"|Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt"
    r"|Nachrichten (?:an diese Gruppe|in diesem Chat) sind jetzt mit Ende-zu-Ende-Verschl"
    r"|This business (?:uses a secure service|works with other companies)"
    r"|Dieses Unternehmen (?:nutzt einen sicheren Service|arbeitet mit anderen)"
)
_EDITED_TEXT = r"<(?:This message was edited|Diese Nachricht wurde bearbeitet)>"
# Prefilters, each anchored at one end only, so that RE2 settles most texts after a few
# bytes; the few candidates then meet the exact patterns below.
_AT_START = rf"^(?:(?:{_PLACEHOLDER}|{_DELETED_TEXT})$|{_ATTACHED}|{_NOTICE_TEXT})"
_AT_END = rf"(?:{_FILE}|{_EDITED_TEXT})$"
_MEDIA = rf"^(?:{_PLACEHOLDER})$|^{_ATTACHED}[^<>\n]+>|^[^\n]+(?:{_FILE})$"
_DELETED = rf"^{_DELETED_TEXT}$"
_NOTICE = rf"^(?:{_NOTICE_TEXT})"
_EDITED = rf"\s*{_EDITED_TEXT}$"


def parse_export(source: str | os.PathLike | IO, dayfirst: bool | None = None) -> pd.DataFrame:
    """Read a WhatsApp chat export into a DataFrame (see the module docstring for the contract).

    ``source`` is a path (``str``/``PathLike``; a ``.txt`` export or the ``.zip`` holding
    it) or an open text or binary stream. ``dayfirst`` forces how ``03/04/21`` is read;
    ``None`` detects it from the whole file. Raises ``ImportFormatError`` (naming the file
    and the first bad line) when the file is not a chat export or a date is impossible.
    """
    name, data = read_bytes(source)
    return _parse(*normalise(data), name, dayfirst)


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


def _parse(data: bytes, lrm_at: np.ndarray, en_dash: bool, name: str,
           dayfirst: bool | None) -> pd.DataFrame:
    buf = pa.py_buffer(data)
    try:
        _strings(np.array([0, len(data)]), buf).validate(full=True)
    except pa.ArrowInvalid:
        raise not_utf8(name, data) from None
    raw = np.frombuffer(data, np.uint8)
    line_offsets = np.concatenate(([0], positions(raw, 10) + 1, [len(data)]))
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

    bracketed = raw[starts] == ord("[")
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
    name_start = date_end + sep_len
    colon = starts + first(": ")
    colon_space = (colon >= starts) & (colon > name_start)
    colon_eol = ~colon_space & (eol - 1 > name_start) & (raw[eol - 1] == ord(":"))
    has_author = colon_space | colon_eol
    name_end = np.where(colon_space, colon, np.where(colon_eol, eol - 1, name_start))
    text_start = np.where(colon_space, colon + 2, np.where(colon_eol, eol, name_start))
    # iOS starts generated texts (system lines, placeholders) with U+200E; on Android a
    # U+200E before a text means nothing (a customer's keyboard may put it there).
    flagged = np.zeros_like(has_author)
    if lrm_at.size and bracketed.any():
        nearest = lrm_at[np.minimum(np.searchsorted(lrm_at, text_start), lrm_at.size - 1)]
        flagged = has_author & bracketed & (nearest == text_start)
    space = starts + first(" ")  # splits the date from the time, see _fields()

    n = len(idx)
    bounds = np.empty(6 * n + 2, np.int64)
    bounds[0], bounds[-1] = 0, len(data)
    for k, offsets in enumerate((starts, space, date_end, name_start, name_end, text_start)):
        bounds[1 + k:-1:6] = offsets
    pieces = _strings(bounds, buf)  # 0: preamble, then six pieces per message

    def column(k: int) -> pa.Array:  # a fresh array (offset 0, no nulls)
        return pieces.take(pa.array(np.arange(1 + k, 1 + 6 * n, 6)))

    lines_no = idx.astype(np.int64) + 1
    timestamps = _timestamps(column(0), column(1), lines_no, name, dayfirst)
    authors, texts = column(3), column(5)
    texts = pc.utf8_trim_whitespace(texts)
    kinds, is_system, edited, texts = _classify(has_author, flagged, texts, authors)
    if is_system.any() and authors.offset == 0:  # null the system lines' authors in place
        authors = pa.LargeStringArray.from_buffers(
            n, authors.buffers()[1], authors.buffers()[2],
            pa.py_buffer(np.packbits(~is_system, bitorder="little")))
    elif is_system.any():
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


def _chat_name(authors: pa.Array, generated: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """Of the ``generated`` lines, those whose author writes nothing else in the file.

    iOS writes a system text (``X added Y``) as a line of the chat's name, with U+200E
    before the text. The chat's name writes nothing else, so its lines are system lines;
    a person who also writes ordinary lines (``evidence``) keeps every line as a message,
    so a customer's ``\u200eSTOP`` is never dropped.
    """
    rows = np.flatnonzero(generated)
    names = pc.unique(authors.take(pa.array(rows)))
    writes = _np(pc.is_in(authors, value_set=names)) & evidence
    speaking = pc.unique(authors.filter(pa.array(writes)))
    system = np.zeros(len(authors), bool)
    system[rows] = ~_np(pc.is_in(authors.take(pa.array(rows)), value_set=speaking))
    return system


def _classify(has_author: np.ndarray, flagged: np.ndarray, texts: pa.Array, authors: pa.Array):
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
    generated = flagged & ~media & ~deleted & ~notice
    is_system = ~has_author | notice
    if generated.any():
        is_system |= _chat_name(authors, generated, has_author & ~generated & ~notice)
    codes = np.where(is_system, 2, np.where(deleted, 3, np.where(media, 1, 0)))  # KINDS order
    return _KIND_NAMES.take(pa.array(codes)), is_system, edited, texts


# -- timestamps ----------------------------------------------------------------------

def _digits(part: pa.Array):
    """Read the distinct strings of a header part with numpy.

    A chat has few distinct dates and at most 86,400 distinct times of day, so each part
    is dictionary-encoded and only its distinct strings are read: up to six runs of digits
    each (0-padded), how many there were, and whether an a or a p (a.m./p.m.) occurs.
    Returns (distinct index per row, runs, count, am, pm).
    """
    encoded = pc.dictionary_encode(part)
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

    return _np(encoded.indices).astype(np.intp), runs, count, has("a"), has("p")


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _days(year, month, day) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01, and whether (year, month, day) is a real date."""
    month_ok = (month >= 1) & (month <= 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.where(month_ok, month, 0)] + (leap & (month == 2))
    valid = month_ok & (day >= 1) & (day <= month_days) & (year >= 1970) & (year <= 2999)
    # The proleptic Gregorian day count, with years starting in March (leap day last).
    y = year - (month <= 2)
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    return y * 365 + y // 4 - y // 100 + y // 400 + day_of_year - 719468, valid


def _timestamps(dates: pa.Array, times: pa.Array, lines: np.ndarray, name: str,
                dayfirst: bool | None) -> np.ndarray:
    """datetime64[us] per message from its date part ("[31.12.20,") and time part (" 23:59")."""
    date_of, date_runs, date_count, _, _ = _digits(dates)
    time_of, time_runs, time_count, am, pm = _digits(times)
    if not (date_count == 3).all():
        # e.g. "2020. 12. 31. 10:00", where the first space falls inside the date: join
        # each row's runs and read them per row.
        d_count, rows = date_count[date_of], np.arange(len(date_of))
        runs = np.zeros((len(rows), 6), np.int64)
        for j in range(6):
            runs[:, j] = np.where(j < d_count, date_runs[date_of, min(j, 5)],
                                  time_runs[time_of, np.clip(j - d_count, 0, 5)])
        time_count = d_count + time_count[time_of] - 3
        am, pm, date_runs, time_runs = am[time_of], pm[time_of], runs[:, :3], runs[:, 3:]
        date_of = time_of = rows

    hour, minute, second = time_runs[:, 0], time_runs[:, 1], time_runs[:, 2]
    # 12-hour clock: "13:37 p.m." occurs in the wild and means 13:37.
    hour = np.where(pm & (hour < 12), hour + 12, np.where(am & (hour == 12), 0, hour))
    time_ok = ((time_count == 2) | (time_count == 3)) & (hour <= 23) & (minute <= 59) & (second <= 59)
    clock = hour * 3600 + minute * 60 + second
    a, b, c = date_runs[:, 0], date_runs[:, 1], date_runs[:, 2]
    yearfirst = a > 31
    year = np.where(yearfirst, a, c)
    year = np.where(year < 100, year + 2000, year)

    def build(day_first: bool) -> tuple[np.ndarray, np.ndarray]:
        month = np.where(yearfirst, b, b if day_first else a)
        days, date_ok = _days(year, month, np.where(yearfirst, c, a if day_first else b))
        valid = date_ok[date_of] & time_ok[time_of]
        seconds = np.where(valid, days[date_of] * 86400 + clock[time_of], 0)
        return (seconds * 1_000_000).astype("datetime64[us]"), valid

    def row(distinct_date: int) -> int:
        return int(np.argmax(date_of == distinct_date))

    def shown(i: int) -> str:
        return (dates[i].as_py() + times[i].as_py()).strip(_BLANK + "[")

    if dayfirst is None:
        dayfirst = _detect_dayfirst(a, b, yearfirst, build, row, lines, name, shown)
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


def _detect_dayfirst(a, b, yearfirst, build, row, lines, name, shown) -> bool:
    """Day-first or month-first for the whole file (a, b: the distinct dates' first fields)."""
    day_a, day_b = ~yearfirst & (a > 12), ~yearfirst & (b > 12)
    if day_a.any() and day_b.any():
        i, j = row(int(np.argmax(day_a))), row(int(np.argmax(day_b)))
        later = max(i, j)  # the first line that contradicts the lines before it
        raise ImportFormatError(
            f"{name}: the file mixes day-first dates (line {lines[i]}: {shown(i)!r}) and "
            f"month-first dates (line {lines[j]}: {shown(j)!r}); one WhatsApp export uses "
            "one order. Split the file, or pass dayfirst= and fix the other lines.",
            path=name, line=int(lines[later]), input=shown(later))
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
