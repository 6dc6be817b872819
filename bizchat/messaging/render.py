"""The one safe renderer for quick replies, automated messages and broadcast templates.

A template is plain text with named placeholders: ``Hallo {first_name}!``. ``{{`` and
``}}`` stand for literal braces. Nothing else is allowed: no positional ``{}`` / ``{0}``,
no attribute or index access (``{a.b}``, ``{a[0]}``), no conversions or format specs
(``{a!r}``, ``{a:>10}``), no expressions. The text is read by our own small tokenizer and
values are inserted as text; ``str.format`` never sees user data, so a template cannot
reach into objects or run code.

Every problem is a ``TemplateError`` with the offending piece and its position
(``position`` is the 0-based index into the text; messages count characters from 1).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from ..errors import InvalidValue, TemplateError

# Placeholder names: ASCII identifiers, like WhatsApp's named template parameters.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
_BRACE = re.compile(r"[{}]")

# The values contact_values always offers (when the contact has them).
STANDARD_PLACEHOLDERS = ("first_name", "name", "business_name")

# Why a character inside braces is refused, by the first character that is not a name.
_REFUSED = {
    ".": "attribute access",
    "[": "index access",
    "]": "index access",
    "!": "a conversion",
    ":": "a format spec",
    "(": "a call",
    ")": "a call",
}


@dataclass(frozen=True)
class Placeholder:
    name: str
    position: int  # index of the opening brace


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    where = f"character {pos + 1}"
    return where if line == 1 else f"{where} (line {line})"


def _refuse(text: str, pos: int, piece: str, why: str) -> TemplateError:
    return TemplateError(
        f"{piece!r} at {_where(text, pos)} is not allowed in a template: {why}. Placeholders "
        "are names in braces such as {first_name}; write {{ and }} for literal braces.",
        template=text, position=pos, piece=piece)


def _check_inner(text: str, start: int, inner: str) -> None:
    """Explain why ``{inner}`` (opening brace at ``start``) is not a placeholder."""
    piece = "{" + inner + "}"
    if inner == "":
        raise _refuse(text, start, piece, "positional placeholders are not supported, give it "
                      "a name")
    for k, ch in enumerate(inner):
        if _NAME_CHAR.match(ch):
            continue
        if ch.isspace():
            why = "spaces are not allowed inside braces"
        elif ch in _REFUSED:
            why = f"{_REFUSED[ch]} ({ch!r}) is not supported"
        else:
            why = f"the character {ch!r} cannot be part of a placeholder name"
        raise _refuse(text, start + 1 + k, piece, why)
    # Only name characters, so it starts with a digit.
    why = ("positional placeholders are not supported, give it a name" if inner.isdigit()
           else "a placeholder name cannot start with a digit")
    raise _refuse(text, start, piece, why)


def parse(text: str) -> list[str | Placeholder]:
    """The template as a list of literal strings and Placeholders; TemplateError if unsafe."""
    if not isinstance(text, str):
        raise TemplateError(f"A template must be text, got {type(text).__name__}.",
                            template=text, position=0, piece=None)
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        match = _BRACE.search(text, i)
        if match is None:
            literal.append(text[i:])
            break
        j = match.start()
        literal.append(text[i:j])
        if text.startswith("{{", j):
            literal.append("{")
            i = j + 2
        elif text.startswith("}}", j):
            literal.append("}")
            i = j + 2
        elif text[j] == "}":
            raise _refuse(text, j, "}", "a single closing brace; write }} for a literal one")
        else:
            close = text.find("}", j + 1)
            nested = text.find("{", j + 1)
            if close == -1:
                raise _refuse(text, j, text[j:j + 20], "the brace is never closed; write {{ "
                              "for a literal one")
            if -1 < nested < close:
                raise _refuse(text, nested, text[j:close + 1], "braces cannot be nested")
            inner = text[j + 1:close]
            if not NAME.fullmatch(inner):
                _check_inner(text, j, inner)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Placeholder(inner, j))
            i = close + 1
    if literal and "".join(literal):
        parts.append("".join(literal))
    return parts


def placeholders(text: str) -> list[str]:
    """The placeholder names of ``text`` in order of first use; TemplateError if unsafe."""
    seen: dict[str, None] = {}
    for part in parse(text):
        if isinstance(part, Placeholder):
            seen.setdefault(part.name)
    return list(seen)


def validate(text: str, known=None) -> list[str]:
    """Check ``text`` up front: its syntax, and with ``known`` that every name is in it.

    Returns the placeholder names. An unknown name raises TemplateError naming it.
    """
    parts = parse(text)
    names = placeholders(text)
    if known is not None:
        allowed = set(known)
        for part in parts:
            if isinstance(part, Placeholder) and part.name not in allowed:
                raise _unknown(text, part, sorted(allowed))
    return names


def _unknown(text: str, part: Placeholder, known: list[str]) -> TemplateError:
    offer = ", ".join("{" + k + "}" for k in known[:12]) or "none"
    more = ", ..." if len(known) > 12 else ""
    return TemplateError(
        f"The placeholder {{{part.name}}} at {_where(text, part.position)} has no value. "
        f"Available here: {offer}{more}. Fix the name, or give a value or a fallback for it.",
        template=text, position=part.position, piece="{" + part.name + "}",
        placeholder=part.name)


def is_missing(value) -> bool:
    """Whether a placeholder value counts as missing (None or NaN)."""
    if value is None:
        return True
    try:
        return isinstance(value, float) and math.isnan(value)
    except TypeError:  # pragma: no cover - float subclasses behave
        return False


def as_text(name: str, value) -> str:
    """A value as it is inserted: text as is, numbers and dates in plain form.

    Anything else (lists, dicts, objects) is refused: a template shows data, it never
    asks an object to format itself.
    """
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        raise TemplateError(
            f"The value for {{{name}}} is a yes/no value; give text instead (e.g. 'ja').",
            placeholder=name, piece="{" + name + "}")
    if isinstance(value, numbers.Integral):
        return int.__repr__(int(value))
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, numbers.Real):
        number = float(value)
        return int.__repr__(int(number)) if number.is_integer() else float.__repr__(number)
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    raise TemplateError(
        f"The value for {{{name}}} is a {type(value).__name__}; only text, numbers and dates "
        "can be inserted into a message.", placeholder=name, piece="{" + name + "}")


Missing = str | Mapping[str, str] | Callable[[str], "str | None"]


def render(text: str, values: Mapping, *, missing: Missing = "error") -> str:
    """Fill the placeholders of ``text`` from ``values``.

    A placeholder with no value (absent, None or NaN) is handled by ``missing``:
    ``"error"`` raises TemplateError naming it (``err.placeholder``); a dict gives fallback
    texts per name (names without one still raise); a callable gets the name and returns
    the text to use, or None to raise. A broadcast can so skip a recipient (catch the
    error) or fall back (``missing={"first_name": "Kundin, Kunde"}``).
    """
    if not (missing == "error" or isinstance(missing, Mapping) or callable(missing)):
        raise InvalidValue(f"missing must be 'error', a dict of fallbacks or a function, got {missing!r}")
    out: list[str] = []
    for part in parse(text):
        if isinstance(part, str):
            out.append(part)
            continue
        value = values.get(part.name)  # dicts and pandas Series alike
        if is_missing(value):
            if isinstance(missing, Mapping):
                value = missing.get(part.name)
            elif callable(missing):
                value = missing(part.name)
            else:
                value = None
            if is_missing(value):
                raise _unknown(text, part, sorted(k for k, v in values.items()
                                                  if not is_missing(v)))
        out.append(as_text(part.name, value))
    return "".join(out)


def _field(row, key):
    if row is None:
        return None
    try:
        value = row[key]
    except (KeyError, IndexError, TypeError):
        return None
    return None if is_missing(value) else value


def contact_values(contact, account=None) -> dict:
    """The standard values for messages to one contact.

    ``first_name`` (the first word of the name), ``name``, ``business_name`` (the
    account's display name), and each contact attribute (the JSON column) under its own
    name when that is a valid placeholder name and the value is text or a number. The
    phone number is left out on purpose. The standard names win over attributes of the
    same name, except where the contact has no name: then an attribute can fill in.
    Rows may be dicts or pandas Series.
    """
    values: dict = {}
    attributes = _field(contact, "attributes")
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except ValueError:
            attributes = None
    if isinstance(attributes, Mapping):
        for key, value in attributes.items():
            if (isinstance(key, str) and NAME.fullmatch(key) and not isinstance(value, bool)
                    and isinstance(value, str | int | float) and not is_missing(value)):
                values[key] = value
    name = _field(contact, "name")
    if isinstance(name, str) and name.strip():
        values["name"] = " ".join(name.split())
        values["first_name"] = name.split()[0]
    business = _field(account, "display_name")
    if isinstance(business, str) and business.strip():
        values["business_name"] = business.strip()
    return values


__all__ = ["NAME", "Placeholder", "STANDARD_PLACEHOLDERS", "as_text", "contact_values", "parse",
           "placeholders", "render", "validate"]
