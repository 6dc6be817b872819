"""WhatsApp Cloud API webhook bodies -> flat tables.

Meta posts ``{"object": "whatsapp_business_account", "entry": [{"changes": [{"field":
..., "value": {...}}]}]}``. A ``value`` names the business number in ``metadata`` and
carries any of ``contacts``, ``messages``, ``statuses``, ``errors`` and (field
``user_preferences``) ``user_preferences``. This module only reads: it turns a batch of
bodies into DataFrames (one row per contact, message, status, preference), so the store
can insert each kind in one statement. Nothing here touches the database.

Newer payloads identify users by a business-scoped ``user_id`` and may withhold the
phone number (``wa_id``) of users with a username, so both are carried everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from ..errors import MalformedField, PayloadError

MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")


def payload_id(body: bytes | str) -> str:
    """A body's id: the sha256 of its bytes, as hex (the same body is the same payload)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return hashlib.sha256(body).hexdigest()


@dataclass
class ParsedBatch:
    """The rows a batch of webhook bodies holds, one DataFrame per kind."""

    contacts: pd.DataFrame
    messages: pd.DataFrame
    statuses: pd.DataFrame
    preferences: pd.DataFrame
    # payload_id -> (phone_number_id, display_phone_number) of every value in it
    numbers: dict[str, set[tuple[str | None, str | None]]] = field(default_factory=dict)
    # payload_id -> why it was not read (not a WhatsApp Business webhook)
    rejected: dict[str, str] = field(default_factory=dict)


CONTACT_COLUMNS = ["payload_id", "phone_number_id", "display_phone", "wa_id", "user_id",
                   "name", "username"]
MESSAGE_COLUMNS = ["payload_id", "phone_number_id", "display_phone", "message_id", "wa_id",
                   "user_id", "created_at", "kind", "body", "media_mime", "reply_to",
                   "details"]
STATUS_COLUMNS = ["payload_id", "phone_number_id", "display_phone", "message_id", "status",
                  "at", "recipient_id", "recipient_user_id", "error_code", "error_title",
                  "errors", "conversation_id", "conversation_category", "pricing_category",
                  "pricing_model", "billable", "callback_data"]
PREFERENCE_COLUMNS = ["payload_id", "phone_number_id", "display_phone", "wa_id", "user_id",
                      "category", "value", "detail", "at"]


# Receipt times outside [0, MAX_TIMESTAMP) are garbage, not a clock: refusing them keeps
# the body from failing the whole batch later (pandas times end in 2262).
MAX_TIMESTAMP = 4_102_444_800   # 2100-01-01 UTC
_INT32 = 2**31


def unix_seconds(value, what: str) -> int:
    """A Cloud API timestamp (Unix seconds, as a string of digits or an integer) within
    1970-2099; ValueError naming ``what`` for anything else (missing, empty, text,
    fractions, booleans, Infinity, 1e400, 10**20 ...)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (
            isinstance(value, str) and not (value.isascii() and value.isdigit())):
        raise MalformedField(f"{what} {_short(value)} is not Unix seconds")
    if (isinstance(value, str) and len(value) > 12) or not 0 <= int(value) < MAX_TIMESTAMP:
        raise MalformedField(f"{what} {_short(value)} lies outside 1970-2099")
    return int(value)


def _ts(value, what: str) -> datetime:
    return datetime.fromtimestamp(unix_seconds(value, what), tz=UTC)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _message_content(msg: dict) -> tuple[str, str | None, str | None, dict | None]:
    """(kind, body, media_mime, details) for one inbound message of any type; ValueError
    for a part of the wrong type (every value that reaches a column is checked here)."""
    kind = _text(msg, "type") or "unsupported"
    found = msg.get(kind)
    content: dict = found if isinstance(found, dict) else {}
    details: dict = {}
    body = None
    mime = None
    if kind == "text":
        body = _text(content, "body")
    elif kind in MEDIA_KINDS:
        body = _text(content, "caption")
        mime = _text(content, "mime_type")
        details = {k: content[k] for k in ("id", "filename", "voice", "animated", "sha256")
                   if k in content}
    elif kind == "location":
        details = {k: content.get(k) for k in ("latitude", "longitude", "name", "address", "url")
                   if content.get(k) is not None}
        body = ", ".join(str(details[k]) for k in ("name", "address") if k in details) or (
            f"{details.get('latitude')}, {details.get('longitude')}")
    elif kind == "contacts":
        shared = _items(msg, "contacts")
        details = {"contacts": shared}
        body = ", ".join(_text(_part(c, "name"), "formatted_name") or "" for c in shared)
    elif kind == "interactive":
        reply_type = _text(content, "type")
        reply = _part(content, reply_type) if reply_type else {}
        details = {"type": reply_type, **{k: reply[k] for k in ("id", "title", "description")
                                          if k in reply}}
        body = _text(reply, "title")
    elif kind == "button":
        details = {"payload": content.get("payload")}
        body = _text(content, "text")
    elif kind == "reaction":
        emoji = _text(content, "emoji") or None    # empty emoji: the reaction was removed
        details = {"emoji": emoji}
        body = emoji
    elif kind == "order":
        details = content
        body = _text(content, "text") or None
    elif kind == "unsupported" or kind not in msg:
        details = {"errors": msg.get("errors")} if msg.get("errors") else {}
        if content:
            details["unsupported"] = content
    else:  # system, request_welcome, ... kept whole
        details = content
        body = _text(content, "body")
    context = _part(msg, "context")
    for flag in ("forwarded", "frequently_forwarded"):
        if context.get(flag):
            details[flag] = True
    if msg.get("referral"):
        details["referral"] = msg["referral"]
    return kind, body, mime, details or None


def parse_batch(bodies: list[tuple[str, dict]]) -> ParsedBatch:
    """Flatten ``[(payload_id, decoded_body), ...]`` into per-kind DataFrames.

    A body that is not a WhatsApp Business webhook (wrong ``object``, no ``entry`` list,
    a part of the wrong type, a value the store could not hold) contributes no rows and
    is listed in ``rejected`` with the reason; so is a body that makes the parser fail in
    a way nobody foresaw. One body never costs the others their rows.
    """
    rows: dict[str, list] = {"contacts": [], "messages": [], "statuses": [], "preferences": []}
    numbers: dict[str, set] = {}
    rejected: dict[str, str] = {}
    for payload_id, body in bodies:
        part: dict[str, list] = {key: [] for key in rows}
        seen: set = set()
        try:
            _parse_body(payload_id, body, part, seen)
        except MalformedField as exc:
            rejected[payload_id] = f"Payload {payload_id[:12]} is malformed: {exc}"
            continue
        except PayloadError as exc:
            rejected[payload_id] = str(exc)
            continue
        except (AttributeError, TypeError, ValueError, LookupError, RecursionError) as exc:
            rejected[payload_id] = f"Payload {payload_id[:12]} is malformed: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stall the batch
            rejected[payload_id] = (f"Payload {payload_id[:12]} could not be parsed "
                                    f"({type(exc).__name__}: {exc})")
            continue
        numbers[payload_id] = seen
        for key in rows:
            rows[key] += part[key]
    return ParsedBatch(
        contacts=_frame(rows["contacts"], CONTACT_COLUMNS),
        messages=_frame(rows["messages"], MESSAGE_COLUMNS, times=["created_at"]),
        statuses=_frame(rows["statuses"], STATUS_COLUMNS, times=["at"], ints=["error_code"]),
        preferences=_frame(rows["preferences"], PREFERENCE_COLUMNS, times=["at"]),
        numbers=numbers,
        rejected=rejected,
    )


def _parse_body(payload_id: str, body, part: dict, seen: set) -> None:
    contacts, messages = part["contacts"], part["messages"]
    statuses, prefs = part["statuses"], part["preferences"]
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise PayloadError(
            f"Payload {payload_id[:12]} is not a WhatsApp Business webhook (expected "
            '"object": "whatsapp_business_account").')
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise PayloadError(f"Payload {payload_id[:12]} has no entry list.")
    for entry in _items(body, "entry", nulls=True):
        for change in _items(entry, "changes", nulls=True):
            value = _part(change, "value")
            meta = _part(value, "metadata")
            pnid, display = _text(meta, "phone_number_id"), _text(meta, "display_phone_number")
            seen.add((pnid, display))
            head = (payload_id, pnid, display)
            for c in _items(value, "contacts"):
                profile = _part(c, "profile")
                contacts.append((*head, _text(c, "wa_id"), _text(c, "user_id"),
                                 _text(profile, "name"), _text(profile, "username")))
            for m in _items(value, "messages"):
                if _text(m, "id") is None:
                    raise MalformedField("a message has no id")
                created = _ts(m.get("timestamp"), "message timestamp")
                kind, text, mime, details = _message_content(m)
                reply_to = _text(_part(m, "context"), "id")
                if kind == "reaction":
                    reply_to = _text(_part(m, "reaction"), "message_id")
                messages.append((*head, m["id"], _text(m, "from"), _text(m, "from_user_id"),
                                 created, kind, text, mime, reply_to,
                                 json.dumps(details, ensure_ascii=False) if details else None))
            for s in _items(value, "statuses", check=False):
                statuses.append((*head, *status_row(s)))
            for p in _items(value, "user_preferences"):
                prefs.append((*head, _text(p, "wa_id"), _text(p, "user_id"), _text(p, "category"),
                              _text(p, "value"), _text(p, "detail"),
                              _ts(p.get("timestamp"), "preference timestamp")))


def _text(obj: dict, key: str):
    """``obj[key]`` when it is a string or missing/null; anything else makes the body malformed.
    NaN counts as null, as it always did here (pandas reads it so; the simulated
    transport writes it for a missing recipient)."""
    value = obj.get(key)
    if isinstance(value, float) and value != value:
        return None
    if value is not None and not isinstance(value, str):
        raise MalformedField(f"{key} is {type(value).__name__}, expected a string")
    return value


def _part(obj: dict, key: str) -> dict:
    """A nested object such as ``pricing``; missing, null or empty means none."""
    value = obj.get(key) or {}
    if not isinstance(value, dict):
        raise MalformedField(f"{key} is {type(value).__name__}, expected an object")
    return value


def _items(obj: dict, key: str, *, nulls: bool = False, check: bool = True) -> list:
    """A list of objects such as ``messages``; missing or null means none. ``nulls``:
    null items are skipped (entries, changes); ``check=False`` leaves the items to the
    caller."""
    value = obj.get(key) or []
    if not isinstance(value, list):
        raise MalformedField(f"{key} is {type(value).__name__}, expected a list")
    if nulls:
        value = [item for item in value if item is not None]
    if check:
        for item in value:
            if not isinstance(item, dict):
                raise MalformedField(f"an item of {key} is {type(item).__name__}, expected an object")
    return value


def status_errors(errors) -> tuple[int | None, str | None, str | None]:
    """(error_code, error_title, the whole array as JSON text) of a status's ``errors``.

    The SQL path for status bodies (status_bodies.py) calls this too, so both store the
    same text. ValueError for an array the store could not hold.
    """
    errors = errors or []
    if not isinstance(errors, list):
        raise MalformedField(f"errors is {type(errors).__name__}, expected a list")
    first = errors[0] if errors else {}
    if not isinstance(first, dict):
        raise MalformedField(f"errors[0] is {type(first).__name__}, expected an object")
    code = first.get("code")
    if isinstance(code, float) and code.is_integer():
        code = int(code)
    elif isinstance(code, str):
        try:
            code = int(code)
        except ValueError:
            raise MalformedField(f"error code {code!r} is not a number") from None
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)
                             or not -_INT32 <= code < _INT32):
        raise MalformedField(f"error code {code!r} is not a 32-bit integer")
    text = json.dumps(errors, ensure_ascii=False) if errors else None
    return code, _text(first, "title"), text


def status_row(s) -> tuple:
    """One ``statuses[]`` item as the values of STATUS_COLUMNS after the head.

    Strict about types: a status that the store could not take (no id, no or absurd
    timestamp, a number where text belongs, ...) raises ValueError, so the batch rejects
    that body with the reason instead of failing as a whole.
    """
    if not isinstance(s, dict):
        raise MalformedField(f"a status is {type(s).__name__}, expected an object")
    if _text(s, "id") is None:
        raise MalformedField("a status has no message id")
    at = _ts(s.get("timestamp"), "status timestamp")
    code, title, errors = status_errors(s.get("errors"))
    conv, pricing = _part(s, "conversation"), _part(s, "pricing")
    billable = pricing.get("billable")
    if billable is not None and not isinstance(billable, bool):
        raise MalformedField(f"billable is {type(billable).__name__}, expected true or false")
    return (s["id"], _text(s, "status"), at, _text(s, "recipient_id"),
            _text(s, "recipient_user_id"), code, title, errors,
            _text(conv, "id"), _text(_part(conv, "origin"), "type"),
            _text(pricing, "category"), _text(pricing, "pricing_model"), billable,
            _text(s, "biz_opaque_callback_data"))


def _frame(rows: list[tuple], columns: list[str], times=(), ints=()) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns, dtype=object)
    for col in times:
        df[col] = pd.to_datetime(df[col], utc=True)
    for col in ints:
        df[col] = pd.to_numeric(df[col]).astype("Int64")
    return df
