"""The bytes of a WhatsApp chat export, ready for chat_export to parse.

``read_bytes`` takes a path or a stream, unzips the ``.zip`` iOS shares and decodes UTF-16
with a byte-order mark; every way a file, a zip or an encoding can be broken is an
``ImportFormatError`` naming the file and the problem. ``normalise`` turns line ends and
no-break spaces into plain ones and removes the invisible marks real exports carry,
keeping where the left-to-right marks stood (iOS uses them to flag generated texts).
``not_utf8`` names the first line that is no UTF-8 text.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib

import numpy as np

from ..errors import ImportFormatError


def read_bytes(source) -> tuple[str, bytes]:
    """(name for messages, UTF-8 bytes) of a path or an open text or binary stream."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            with open(name, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ImportFormatError(
                f"Cannot read {name}: {exc.strerror or exc}. Check the path and that you may "
                "read the file (the chat's .txt file, or the .zip WhatsApp shared).",
                path=name, line=None, input=None) from None
    else:
        name = str(getattr(source, "name", None) or "<stream>")
        data = source.read()
        if isinstance(data, str):
            # A lone surrogate survives as its three bytes and is named in not_utf8.
            data = data.encode("utf-8", "surrogatepass")
    if data[:4] == b"PK\x03\x04":  # iOS shares the export as a zip with _chat.txt inside
        name, data = _unzip(name, data)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        data = _from_utf16(name, data)
    return name, data


def _from_utf16(name: str, data: bytes) -> bytes:
    try:
        return data.decode("utf-16").encode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[:exc.start].decode("utf-16", "replace")
        line = good.count("\n") + 1
        problem = ("ends in the middle of a character (the file is cut off)"
                   if exc.end >= len(data) and "truncated" in exc.reason
                   else "holds a lone surrogate (half of a character)")
        raise ImportFormatError(
            f"{name}: line {line}: the UTF-16 text {problem}. Export the chat again "
            "(Chat > More > Export chat) and pass the new file.",
            path=name, line=line, input=good.rsplit("\n", 1)[-1][:80]) from None


# What a damaged zip can raise while it is opened or read: zipfile checks little itself.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               ValueError, NotImplementedError, RuntimeError, KeyError, OverflowError)


def _unzip(name: str, data: bytes) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            texts = [m for m in zf.namelist() if m.lower().endswith(".txt")]
            chosen = [m for m in texts if os.path.basename(m) == "_chat.txt"] or texts
            if len(chosen) != 1:
                raise ImportFormatError(
                    f"{name}: the zip holds {len(texts)} .txt files ({', '.join(texts[:5]) or 'none'}); "
                    "expected one chat export. Unzip it and pass the chat's .txt file.",
                    path=name, line=None, input=None)
            return f"{name}!{chosen[0]}", zf.read(chosen[0])
    except ImportFormatError:
        raise
    except _ZIP_ERRORS as exc:
        problem = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        if isinstance(exc, RuntimeError) and "encrypted" in problem:
            problem = "it is encrypted"
        raise ImportFormatError(
            f"{name} is not a readable zip archive ({problem}). The file may be cut off or "
            "damaged: share the chat export again, or unzip it and pass the chat's .txt file.",
            path=name, line=None, input=None) from None


def positions(raw: np.ndarray, byte: int, chunk: int = 1 << 22) -> np.ndarray:
    """Where ``byte`` occurs, scanned in chunks: a file-sized temporary would cost a page
    fault per 4 KB on every call."""
    hit = np.empty(min(chunk, len(raw)), bool)
    found = [np.zeros(0, np.int64)]
    for at in range(0, len(raw), chunk):
        part = hit[:len(raw) - at] if len(raw) - at < chunk else hit
        np.equal(raw[at:at + chunk], byte, out=part)
        found.append(np.flatnonzero(part) + at)
    return np.concatenate(found)


def normalise(data: bytes) -> tuple[bytes, np.ndarray, bool]:
    """CR LF to LF, no-break spaces to spaces, invisible marks removed.

    Removed everywhere: U+FEFF (a byte-order mark; some exports repeat it at line starts,
    or just after ``[``), U+200E/U+200F, the bidi embeddings U+202A-U+202E (around phone
    numbers) and isolates U+2066-U+2069 (around names and mentions). Returns the bytes,
    where the left-to-right marks stood in them (iOS starts generated texts with one; see
    ``flagged`` in chat_export._parse) and whether an en dash occurs. One numpy scan finds the
    three-byte punctuation (E2 80 xx, E2 81 xx) all this needs.
    """
    if b"\r" in data:  # memchr
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\xc2\xa0" in data:  # U+00A0; rare in chats, so the search is quick
        data = data.replace(b"\xc2\xa0", b" ")
    for _ in range(2):
        raw = np.frombuffer(data, np.uint8)
        lead = positions(raw[:-2], 0xE2)  # U+2000..U+2FFF
        second = raw[lead + 1]
        lead = lead[(second == 0x80) | (second == 0x81)]
        second, third = raw[lead + 1], raw[lead + 2]
        if not ((second == 0x80) & (third == 0xAF)).any():  # U+202F narrow no-break space
            break                                            # (iOS, before AM/PM)
        data = data.replace("\u202f".encode(), b" ")
    in_80 = second == 0x80
    is_lrm = in_80 & (third == 0x8E)
    is_mark = (is_lrm | (in_80 & ((third == 0x8F) | ((third >= 0xAA) & (third <= 0xAE))))
               | (~in_80 & (third >= 0xA6) & (third <= 0xA9)))
    cut = lead[is_mark]
    if data.find(b"\xef") >= 0:  # memchr; U+FEFF is EF BB BF
        ef = positions(raw[:-2], 0xEF)
        boms = ef[(raw[ef + 1] == 0xBB) & (raw[ef + 2] == 0xBF)]
        if boms.size:
            cut = np.union1d(cut, boms)
    # After removing k marks (three bytes each), the next one's place moves back by 3 k.
    lrm = lead[is_lrm]
    lrm_at = lrm - 3 * np.searchsorted(cut, lrm)
    if cut.size * 600 > len(data):  # marks on many lines (numbers wrapped in U+202A/C):
        keep = np.ones(len(data), bool)  # one masked copy beats a slice per mark
        keep[(cut[:, None] + np.arange(3)).ravel()] = False
        data = np.frombuffer(data, np.uint8)[keep].tobytes()
    elif cut.size:  # copy the bytes between the marks (faster than several replaces)
        view = memoryview(data)
        begins, ends = np.concatenate(([0], cut + 3)).tolist(), np.append(cut, len(data)).tolist()
        data = b"".join(view[b:e] for b, e in zip(begins, ends, strict=True))
    return data, lrm_at, bool((in_80 & (third == 0x93)).any())


def not_utf8(name: str, data: bytes) -> ImportFormatError:
    """The error for ``data`` that is not UTF-8: its first bad line, or a lone surrogate."""
    try:
        data.decode("utf-8")
        start = 0
    except UnicodeDecodeError as exc:
        start = exc.start
    line_no = data.count(b"\n", 0, start) + 1
    first = data.rfind(b"\n", 0, start) + 1
    end = data.find(b"\n", start)
    excerpt = data[first:end if end >= 0 else len(data)][:80].decode("utf-8", "replace")
    # ED A0..BF is how a lone surrogate (half of a UTF-16 pair) comes out as bytes.
    pair = data[start:start + 2]
    surrogate = len(pair) == 2 and pair[0] == 0xED and 0xA0 <= pair[1] <= 0xBF
    what = ("holds a lone surrogate (half of a UTF-16 character), which is not text"
            if surrogate else "is not UTF-8 text")
    return ImportFormatError(
        f"{name}: line {line_no} {what} ({excerpt!r}); this does not look like a "
        "WhatsApp chat export. Export the chat again (Chat > More > Export chat) and pass "
        "the .txt file.",
        path=name, line=line_no, input=excerpt)


__all__ = ["normalise", "not_utf8", "positions", "read_bytes"]
