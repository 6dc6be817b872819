"""Contacts from a CSV file, with the consent evidence each row carries.

There is no address-book upload: a row becomes a contact of one account, and gets
marketing consent only when the file proves it (consent = yes, an ``evidence`` text and
the time ``consent_at``). Rows without that are imported without consent and counted.
Bad rows are reported with their line and reason, the good ones are kept; a file that
cannot be read at all raises ImportFormatError naming the file and line. Everything is
written in one transaction, and importing the same file again changes nothing (contacts
are matched by number, consent events deduplicated by contact, purpose, action, time and
source).

The CSV is split with the csv module (it knows the physical line of every record, also
for quoted multi-line cells, which pandas does not), then validated as a pandas frame of
strings and written in bulk. Cells are stored as plain text: ``=cmd()`` or SQL-looking
names are data, never formulas or code.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from .. import store
from ..errors import BizchatError, ImportFormatError, InvalidValue
from .accounts import check_timezone, default_region, get_account
from .consent import record_events
from .contacts import check_attributes, check_language, dump_attributes, parse_contact_phone

# Header names users write, mapped to ours (compared lower-case, spaces -> _).
_ALIASES = {
    "phone": ("phone", "phone_number", "number", "mobile", "telefon", "telefonnummer",
              "handy", "handynummer", "mobil", "tel", "whatsapp"),
    "name": ("name", "full_name", "kontakt"),
    "consent": ("consent", "marketing_consent", "einwilligung", "opt_in"),
    "consent_source": ("consent_source", "source", "quelle"),
    "consent_at": ("consent_at", "consent_date", "consented_at", "opt_in_at", "datum"),
    "evidence": ("evidence", "consent_evidence", "nachweis"),
    "purpose": ("purpose", "consent_purpose", "zweck"),
    "language": ("language", "lang", "sprache"),
    "timezone": ("timezone", "time_zone", "zeitzone"),
    "attributes": ("attributes", "attribute"),
}
_YES = {"yes", "y", "ja", "j", "true", "wahr", "1", "x", "opt_in", "opt-in", "optin", "granted"}
_NO = {"no", "n", "nein", "false", "falsch", "0", "opt_out", "opt-out", "optout", "withdrawn",
       "revoked", "widerrufen"}


def _cell(value: str, width: int = 40) -> str:
    """A cell quoted for a reason, cut short so a 5,000-character cell stays one line."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 4] + "...'"


@dataclass
class ImportResult:
    """What an import did. ``bad`` and ``consent_not_recorded`` list {line, reason}."""

    file: str
    account: str
    rows: int = 0
    imported: int = 0           # new contacts
    updated: int = 0            # existing contacts with a changed field or new consent event
    unchanged: int = 0          # existing contacts the file had nothing new for
    without_consent: int = 0    # good rows whose contact has no marketing opt-in afterwards
    consent_events: int = 0     # consent events recorded
    bad: list[dict] = field(default_factory=list)
    consent_not_recorded: list[dict] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"Imported {self.file} into account {self.account}: {self.rows} rows",
            f"  new contacts      {self.imported}",
            f"  updated           {self.updated}",
            f"  unchanged         {self.unchanged}",
            f"  consent events    {self.consent_events}",
            f"  without marketing consent  {self.without_consent}",
            f"  bad rows (skipped) {len(self.bad)}",
        ]
        if self.ignored_columns:
            lines.append(f"  ignored columns: {', '.join(self.ignored_columns)}")
        for item in self.consent_not_recorded:
            lines.append(f"  line {item['line']}: imported without consent: {item['reason']}")
        for item in self.bad:
            lines.append(f"  line {item['line']}: skipped: {item['reason']}")
        return "\n".join(lines)


# --- reading ---------------------------------------------------------------------------------

def _read_records(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, records and the physical line each record starts on."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(
            f"Cannot read {path}: {exc.strerror or exc}. Check the path and that you may "
            "read the file.", path=str(path), line=None) from exc
    # Excel saves "Unicode text" as UTF-16 with a byte-order mark; everything else is UTF-8.
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].decode(encoding, "replace").count("\n") + 1
        what = ("the UTF-16 text is cut off or holds half a character" if encoding == "utf-16"
                else "the file is not UTF-8 text")
        raise ImportFormatError(
            f"{path}, line {line}: {what}. Save it as 'CSV UTF-8' and import again.",
            path=str(path), line=line) from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count) if first.strip() else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records, lines = [], []
    start = 1
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                records.append(record)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        # An unclosed quote swallows the rest of the file: point at the record it opened.
        line = start if "end of data" in str(exc) else reader.line_num
        what = "a quoted cell starting on this line is never closed" if line == start else str(exc)
        raise ImportFormatError(
            f"{path}, line {line}: {what}. Check the quotes on that line (a cell with a quote "
            'inside must be quoted and the quote doubled: "a ""b"" c").',
            path=str(path), line=line) from exc
    if not records:
        raise ImportFormatError(f"{path} is empty: it needs a header line with a phone column.",
                                path=str(path), line=1)
    return records[0], records[1:], lines[1:]


def _columns(path: Path, header: list[str], header_line: int = 1) -> tuple[dict, list[str]]:
    """Our column name -> position in the file, and the columns ignored."""
    lookup = {alias: ours for ours, names in _ALIASES.items() for alias in names}
    found: dict[str, int] = {}
    ignored: list[str] = []
    for pos, raw in enumerate(header):
        key = re.sub(r"\s+", "_", raw.strip().lower())
        ours = lookup.get(key)
        if ours is None:
            ignored.append(raw.strip())
        elif ours in found:
            raise ImportFormatError(
                f"{path}, line {header_line}: the column {ours!r} appears twice "
                f"({header[found[ours]]!r} and {raw!r}). Keep one.", path=str(path),
                line=header_line)
        else:
            found[ours] = pos
    if "phone" not in found:
        raise ImportFormatError(
            f"{path}, line {header_line}: no phone column. The header has "
            f"{', '.join(_cell(h) for h in header[:12])}; name the number column 'phone'.",
            path=str(path), line=header_line)
    return found, ignored


def _frame(header, records, lines, positions) -> tuple[pd.DataFrame, dict]:
    """All wanted columns as strings, trimmed; rows with too many cells collected apart."""
    width = len(header)
    problems: dict[int, list[str]] = {}
    rows = []
    for line, record in zip(lines, records, strict=True):
        if len(record) > width and any(c.strip() for c in record[width:]):
            problems.setdefault(line, []).append(
                f"has {len(record)} cells but the header has {width} (an unquoted comma?)")
        rows.append([record[p] if p < len(record) else "" for p in positions.values()])
    frame = pd.DataFrame(rows, columns=list(positions), dtype=object)
    frame = frame.apply(lambda s: s.str.strip()).astype(object)
    frame.insert(0, "line", lines)
    return frame, problems


# --- validation ------------------------------------------------------------------------------

_GERMAN_TIMES = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")
# Consent given before WhatsApp existed cannot be consent to WhatsApp messages: such a
# date is a typo or a placeholder (0001-01-01, 1900-01-01), not evidence.
EARLIEST_CONSENT = datetime(2009, 1, 1, tzinfo=UTC)


def _parse_time(text: str, zone: ZoneInfo) -> tuple[datetime | None, str | None]:
    """One consent time as UTC, or None and why not. ISO 8601 in any form Python reads
    (offsets ``Z``, ``+02``, ``+0200``, ``+02:00``) or German dd.mm.yyyy [HH:MM[:SS]];
    a time without an offset is read in ``zone``."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        at = None
    for fmt in _GERMAN_TIMES:
        if at is not None:
            break
        try:
            at = datetime.strptime(text, fmt)
        except ValueError:
            pass
    if at is None:
        return None, "is not a date (use 2024-05-31 14:05 or 31.05.2024 14:05)"
    if at.tzinfo is None:
        # A wall-clock time that the clock change skips or repeats names no instant.
        first, second = at.replace(tzinfo=zone, fold=0), at.replace(tzinfo=zone, fold=1)
        if first.utcoffset() != second.utcoffset():
            return None, (f"falls in a daylight-saving change in {zone.key}; give it with "
                          "its offset, e.g. 2024-10-27T02:30+02:00")
        at = first
    try:
        at = at.astimezone(UTC)
    except (OverflowError, ValueError):  # 0001-01-01 with a positive offset
        return None, "lies before WhatsApp existed (2009); check the date"
    if at < EARLIEST_CONSENT:
        return None, "lies before WhatsApp existed (2009); check the date"
    return at, None


def _parse_times(values: pd.Series, zone: str) -> tuple[pd.Series, pd.Series]:
    """UTC times (NaT where missing or bad) and the reason per bad value; each distinct
    text is read once."""
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    reasons = pd.Series(None, index=values.index, dtype=object)
    present = values[values != ""]
    if present.empty:
        return out, reasons
    tz = ZoneInfo(zone)
    parsed = {text: _parse_time(text, tz) for text in present.unique()}
    out[present.index] = pd.Series([parsed[t][0] for t in present], index=present.index,
                                   dtype=object).astype(out.dtype)
    reasons[present.index] = [parsed[t][1] for t in present]
    return out, reasons


def _validate(frame: pd.DataFrame, problems: dict, region: str, zone: str,
              ) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """The good rows with their stored values; the bad lines and the rows whose consent is
    not recorded, each as {line, reason}."""
    def bad(mask: pd.Series, reason) -> None:
        for line, value in zip(frame.loc[mask, "line"], frame.loc[mask].index, strict=True):
            text = reason(value) if callable(reason) else reason
            problems.setdefault(int(line), []).append(text)

    def col(name):
        return frame[name] if name in frame else pd.Series("", index=frame.index, dtype=object)

    # NUL characters cannot be stored as text.
    has_nul = frame.drop(columns="line").apply(lambda s: s.str.contains("\x00", regex=False)).any(axis=1)
    bad(has_nul, "contains a NUL character")

    # Phone numbers: phonenumbers once per distinct written form, with its own message.
    parsed: dict[str, tuple[str | None, str | None]] = {}
    for raw in col("phone").unique():
        if not raw:
            parsed[raw] = (None, "no phone number")
            continue
        try:
            parsed[raw] = (parse_contact_phone(raw, region).e164, None)
        except BizchatError as exc:
            parsed[raw] = (None, f"invalid phone number: {exc}")
    e164 = col("phone").map(lambda raw: parsed[raw][0]).astype(object)
    phone_error = col("phone").map(lambda raw: parsed[raw][1])
    bad(phone_error.notna(), lambda i: phone_error[i])
    # The same number twice in the file: the first one counts.
    dup = e164.notna() & e164.duplicated(keep="first")
    first_line = frame["line"].groupby(e164).transform("min")
    bad(dup, lambda i: f"duplicate of line {int(first_line[i])} (same number {e164[i]})")

    consent = col("consent").str.lower()
    action = pd.Series(None, index=frame.index, dtype=object)
    action[consent.isin(_YES)] = "opt_in"
    action[consent.isin(_NO)] = "opt_out"
    bad((consent != "") & action.isna(),
        lambda i: f"consent value {_cell(frame.at[i, 'consent'])} is not yes/no (ja/nein, opt_in/opt_out)")

    purpose = col("purpose").str.lower().replace({"": "marketing", "utility": "service"})
    bad(~purpose.isin(["marketing", "service"]),
        lambda i: f"purpose {_cell(frame.at[i, 'purpose'])} is not marketing or service")

    at, at_reason = _parse_times(col("consent_at"), zone)
    bad(at_reason.notna(), lambda i: f"consent_at {_cell(frame.at[i, 'consent_at'])} {at_reason[i]}")
    bad(at > pd.Timestamp.now(tz="UTC"), lambda i: f"consent_at {_cell(frame.at[i, 'consent_at'])} lies in the future")

    language = col("language").str.replace("_", "-")
    lang_ok = (language == "") | language.str.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
    bad(~lang_ok, lambda i: f"language {_cell(frame.at[i, 'language'])} is not a language tag like de or de-AT")

    zones: dict[str, str | None] = {}
    attributes: dict = {}
    for value in col("timezone").unique():
        if value:
            try:
                zones[value] = check_timezone(value)
            except InvalidValue:
                zones[value] = None
    tz = col("timezone")
    bad(tz.map(lambda v: bool(v) and zones.get(v) is None).astype(bool),
        lambda i: f"timezone {_cell(tz[i])} is not an IANA zone like Europe/Berlin")
    attr_reason = {}
    for idx, raw in col("attributes").items():
        if raw:
            try:
                checked = check_attributes(raw)   # None for blank text, as contacts.add stores it
                attributes[idx] = None if checked is None else dump_attributes(checked)
            except InvalidValue as exc:
                attr_reason[idx] = f"attributes: {exc}"
    bad(frame.index.isin(list(attr_reason)), lambda i: attr_reason[i])

    bad_lines = [{"line": line, "reason": "; ".join(reasons_)}
                 for line, reasons_ in sorted(problems.items())]
    good = ~frame["line"].isin(list(problems))

    # Consent is recorded only with proof: evidence and the time it was given.
    evidence, when = col("evidence"), at
    wants = good & action.notna()
    proven = wants & (evidence != "") & when.notna()

    def lacking(i) -> str:
        parts = [name for name, gap in (("evidence", evidence[i] == ""),
                                        ("consent_at", pd.isna(when[i]))) if gap]
        return f"consent {_cell(frame.at[i, 'consent'])} without {' and '.join(parts)}"

    not_recorded = [{"line": int(frame.at[i, "line"]), "reason": lacking(i)}
                    for i in frame.index[wants & ~proven & (action == "opt_in")]]

    rows = pd.DataFrame({
        "line": frame["line"], "phone_e164": e164, "wa_id": e164.str[1:],
        "name": col("name").replace("", None),
        "language": language.where(lang_ok & (language != ""), None).map(
            lambda v: check_language(v) if v else None),
        "timezone": tz.map(lambda v: zones.get(v) if v else None),
        "attributes": pd.Series(attributes, dtype=object).reindex(frame.index),
        "action": action.where(proven | (good & (action == "opt_out")), None),
        "purpose": purpose,
        "source": col("consent_source").replace("", "import"),
        "evidence": evidence.replace("", None),
        "recorded_at": when,
    })[good]
    rows = rows.astype({c: object for c in rows.columns if c not in ("line", "recorded_at")})
    rows = rows.where(rows.notna(), None)
    return rows, bad_lines, not_recorded


# --- writing ---------------------------------------------------------------------------------

def import_contacts(ws, path: str | os.PathLike, account, *, actor: str = "bizchat") -> ImportResult:
    """Import the contacts of a CSV file into ``account``; see the module docstring.

    Columns (header names are matched case-insensitively, German names too): phone
    (required), name, consent (yes/no), consent_source, consent_at, evidence, purpose
    (marketing or service, default marketing), language, timezone, attributes (a JSON
    object). Other columns, labels included, are ignored and listed in the result.
    """
    path = Path(path)
    header, records, lines = _read_records(path)
    positions, ignored = _columns(path, header)
    frame, problems = _frame(header, records, lines, positions)
    with ws.connect() as con:
        acc = get_account(con, account)
    rows, bad, not_recorded = _validate(frame, problems, default_region(acc), acc["timezone"])
    result = ImportResult(file=str(path), account=acc["phone_e164"], rows=len(records),
                          bad=bad, consent_not_recorded=not_recorded, ignored_columns=ignored)
    with ws.transaction() as con:
        # People erased from this account come back only with consent given after that.
        from .tombstones import hold_back

        rows, erased = hold_back(con, acc["account_id"], rows)
        if erased:
            result.bad = sorted(result.bad + erased, key=lambda item: item["line"])
        _write(con, acc["account_id"], rows, result, actor)
        con.execute(
            'INSERT INTO audit_log ("at", actor, action, subject_key, details) '
            "VALUES (?, ?, 'contacts.import', NULL, ?)",
            [datetime.now(UTC), actor, json.dumps({
                "account_id": acc["account_id"], "file": path.name, "rows": result.rows,
                "imported": result.imported, "updated": result.updated,
                "unchanged": result.unchanged, "without_consent": result.without_consent,
                "consent_events": result.consent_events, "bad_rows": len(result.bad)})])
    return result


def _write(con, account_id: int, rows: pd.DataFrame, result: ImportResult, actor: str) -> None:
    if rows.empty:
        return
    now = datetime.now(UTC)
    batch = rows.reset_index(drop=True)
    batch["i"] = range(len(batch))
    with store.registered(con, "_import_in", batch):
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _import AS
            SELECT b.*, m.contact_id
            FROM _import_in b
            LEFT JOIN (SELECT wa_id, min(contact_id) AS contact_id FROM contacts
                       WHERE account_id = ? AND wa_id IS NOT NULL GROUP BY wa_id) m USING (wa_id)""",
                    [account_id])
    base = store.next_id(con, "contacts", "contact_id")
    con.execute("""
        UPDATE _import SET contact_id = k.id
        FROM (SELECT i, ? - 1 + row_number() OVER (ORDER BY i) AS id
              FROM _import WHERE contact_id IS NULL) k
        WHERE _import.i = k.i""", [base])
    # Existing contacts: fields the file gives replace stored ones; attributes merge.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _import_changed AS
        SELECT c.contact_id FROM contacts c JOIN _import i USING (contact_id)
        WHERE c.contact_id < ? AND (
              (i.name IS NOT NULL AND c.name IS DISTINCT FROM i.name)
           OR (i.language IS NOT NULL AND c.language IS DISTINCT FROM i.language)
           OR (i.timezone IS NOT NULL AND c.timezone IS DISTINCT FROM i.timezone)
           OR (i.attributes IS NOT NULL AND c.attributes IS DISTINCT FROM
               json_merge_patch(coalesce(c.attributes, '{}'), i.attributes)))""", [base])
    con.execute("""
        UPDATE contacts SET
            name = coalesce(i.name, contacts.name),
            language = coalesce(i.language, contacts.language),
            timezone = coalesce(i.timezone, contacts.timezone),
            attributes = CASE WHEN i.attributes IS NULL THEN contacts.attributes
                              ELSE json_merge_patch(coalesce(contacts.attributes, '{}'), i.attributes) END
        FROM _import i
        WHERE contacts.contact_id = i.contact_id
          AND contacts.contact_id IN (SELECT contact_id FROM _import_changed)""")
    con.execute("""
        INSERT INTO contacts (contact_id, account_id, phone_e164, wa_id, name, language, timezone,
                              attributes, created_at)
        SELECT contact_id, ?, phone_e164, wa_id, name, language, timezone, json(attributes), ?
        FROM _import WHERE contact_id >= ?""", [account_id, now, base])
    # Consent: proven events at their time. An opt-out without a date is recorded now, but
    # only when it changes something (so importing the file again adds nothing).
    events = con.execute("""
        SELECT i.contact_id, ? AS account_id, i.purpose, i.action, i.source, i.evidence,
               coalesce(i.recorded_at, ?) AS recorded_at
        FROM _import i
        LEFT JOIN current_consent cc ON cc.contact_id = i.contact_id AND cc.purpose = i.purpose
        WHERE i.action IS NOT NULL
          AND (i.recorded_at IS NOT NULL OR (i.action = 'opt_out' AND cc.state = 'opt_in'))
        ORDER BY i.i""", [account_id, now]).df()
    before = con.execute("SELECT coalesce(max(event_id), 0) FROM consent_events").fetchall()[0][0]
    result.consent_events = record_events(con, events, actor=actor)
    counts = con.execute("""
        SELECT count(*) FILTER (WHERE i.contact_id >= ?),
               count(*) FILTER (WHERE i.contact_id < ? AND (
                   i.contact_id IN (SELECT contact_id FROM _import_changed)
                   OR i.contact_id IN (SELECT contact_id FROM consent_events WHERE event_id > ?))),
               count(*) FILTER (WHERE cc.state IS DISTINCT FROM 'opt_in')
        FROM _import i
        LEFT JOIN current_consent cc ON cc.contact_id = i.contact_id AND cc.purpose = 'marketing'
        """, [base, base, before]).fetchall()[0]
    result.imported, result.updated, result.without_consent = counts
    result.unchanged = len(rows) - result.imported - result.updated
    con.execute("DROP TABLE _import")
    con.execute("DROP TABLE _import_changed")
