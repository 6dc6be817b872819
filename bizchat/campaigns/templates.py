"""Message templates: what a broadcast sends, checked when composed (``ws.templates``).

A template is registered per account like a WhatsApp message template: a name (lowercase
letters, digits, underscores), a language, a category (marketing, utility,
authentication), a body with named placeholders (``Hallo {first_name}``), and optionally a
header (text, at most one placeholder), a footer (plain text) and buttons (quick replies,
and URL buttons whose URL may end in one placeholder). Every text goes through the one
safe renderer (``bizchat.messaging.render``), so ``{__class__}``, ``{0}``, ``{a.b}``, ``{a[0]}`` and
unbalanced braces are refused with ``TemplateError`` when the template is created, never
later when sending.

Rendering many recipients at once (``render_template``, ``value_frame``) lives in
``bizchat.campaigns.template_frames`` and is re-exported here: it uses the renderer's own tokenizer
and value conversion over DataFrame columns, so a million recipients render in seconds
and each gets exactly what ``render.render`` would give. The preview and the frozen
recipient body both come from it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pandas as pd

from .. import store
from ..errors import Conflict, InvalidValue, NotFound, TemplateError
from ..messaging import placeholders as placeholder_names
from ..messaging import render
from ..people.accounts import get_account
from ..people.contacts import check_language
from .template_frames import (  # noqa: F401 - re-exported: the bulk side of templates
    as_objects,
    message_text,
    placeholders,
    render_frame,
    render_template,
    value_frame,
)

CATEGORIES = ("marketing", "utility", "authentication")
STANDARD = frozenset(render.STANDARD_PLACEHOLDERS)

# WhatsApp's limits for message templates, so a template composed here can be registered.
NAME_MAX = 512
BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTON_TEXT_MAX = 25
URL_MAX = 2000
MAX_BUTTONS = 10
MAX_URL_BUTTONS = 2
_NAME = re.compile(r"^[a-z0-9_]+$")
# WhatsApp's named parameters: lowercase letters, digits and underscores. A leading
# underscore is refused as well, so no dunder name ({__class__}) ever reaches a template.
_PARAMETER = re.compile(r"^[a-z][a-z0-9_]*$")
_BUTTON_TYPES = {"quick_reply": "quick_reply", "quick-reply": "quick_reply",
                 "reply": "quick_reply", "url": "url", "link": "url"}

_COLUMNS = ("template_id, account_id, name, language, category, header, body, footer, "
            "buttons, created_at")


# --- checks (pure) ----------------------------------------------------------------------------

def slug(text: str) -> str:
    """A template name from any text: ``"Sommer-Aktion 2025!"`` -> ``sommer_aktion_2025``."""
    plain = unicodedata.normalize("NFKD", str(text).replace("ß", "ss"))
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).lower()
    name = re.sub(r"[^a-z0-9]+", "_", plain).strip("_")[:NAME_MAX - 8]
    return name or "broadcast"


def check_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("A template needs a name, e.g. 'sommer_aktion'.", input=name)
    text = name.strip()
    if len(text) > NAME_MAX or not _NAME.match(text):
        raise InvalidValue(
            f"{name!r} is not a template name: WhatsApp allows lowercase letters, digits and "
            f"underscores, at most {NAME_MAX} characters. Try {slug(name)!r}.", input=name)
    return text


def check_category(category, allowed=CATEGORIES) -> str:
    key = str(category).strip().lower() if category is not None else ""
    if key not in allowed:
        raise InvalidValue(f"{category!r} is not a template category; use one of "
                           f"{', '.join(allowed)}.", input=category)
    return key


def _text(part: str, value, limit: int, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise TemplateError(f"The template {part} is empty; write the message text.",
                                template=value, piece=None, position=0)
        return None
    if not isinstance(value, str):
        raise TemplateError(f"The template {part} must be text, got {type(value).__name__}.",
                            template=value, piece=None, position=0)
    value = value.strip()
    if len(value) > limit:
        raise TemplateError(f"The template {part} has {len(value)} characters; WhatsApp allows "
                            f"at most {limit}. Shorten it.", template=value, piece=None,
                            position=limit)
    check_placeholders(value)
    return value


def check_placeholders(text: str) -> list[str]:
    """The safe syntax (``render.parse``: TemplateError with the position), and
    placeholder names WhatsApp accepts as named parameters."""
    names = []
    for part in render.parse(text):
        if isinstance(part, render.Placeholder):
            if not _PARAMETER.match(part.name):
                raise TemplateError(
                    f"{{{part.name}}} at character {part.position + 1} is not allowed in a "
                    "template: placeholder names are lowercase letters, digits and underscores, "
                    "starting with a letter (e.g. {first_name}).", template=text,
                    position=part.position, piece="{" + part.name + "}")
            names.append(part.name)
    return names


def check_buttons(buttons) -> list[dict] | None:
    """Buttons as stored: ``[{"type": "quick_reply", "text": ...}, {"type": "url", "text":
    ..., "url": "https://..."}]``. A plain string is a quick reply."""
    if buttons is None:
        return None
    if isinstance(buttons, str):
        try:
            buttons = json.loads(buttons)
        except ValueError as exc:
            raise InvalidValue(f"Buttons must be a list, got {buttons!r}.", input=buttons) from exc
    if isinstance(buttons, Mapping):
        buttons = [buttons]
    out = []
    for i, button in enumerate(list(buttons), start=1):
        if isinstance(button, str):
            button = {"type": "quick_reply", "text": button}
        if not isinstance(button, Mapping):
            raise InvalidValue(f"Button {i} must be a dict with type and text, got {button!r}.",
                               input=button)
        kind = _BUTTON_TYPES.get(str(button.get("type", "quick_reply")).strip().lower())
        if kind is None:
            raise InvalidValue(f"Button {i} has type {button.get('type')!r}; use quick_reply "
                               "or url.", input=button)
        text = button.get("text")
        if not isinstance(text, str) or not text.strip() or len(text.strip()) > BUTTON_TEXT_MAX:
            raise InvalidValue(f"Button {i} needs a text of 1 to {BUTTON_TEXT_MAX} characters, "
                               f"got {text!r}.", input=button)
        text = text.strip()
        if "{" in text or "}" in text:
            raise TemplateError(f"Button {i} ({text!r}) cannot contain braces or placeholders; "
                                "only a URL button's URL may end in one.", template=text,
                                piece=text, position=text.find("{") if "{" in text else
                                text.find("}"))
        entry = {"type": kind, "text": text}
        if kind == "url":
            url = button.get("url")
            if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+\.[^\s]+$", url.strip()):
                raise InvalidValue(f"Button {i} needs a web address starting with https://, got "
                                   f"{url!r}.", input=button)
            url = url.strip()
            if len(url) > URL_MAX:
                raise InvalidValue(f"The URL of button {i} is longer than {URL_MAX} characters.",
                                   input=button)
            check_placeholders(url)
            parts = render.parse(url)
            names = [p for p in parts if isinstance(p, render.Placeholder)]
            if len(names) > 1 or (names and parts[-1] is not names[0]):
                raise TemplateError(
                    f"The URL of button {i} may have one placeholder, at its end (e.g. "
                    "https://shop.example/p/{code}).", template=url, piece=url, position=0)
            entry["url"] = url
        out.append(entry)
    if len(out) > MAX_BUTTONS:
        raise InvalidValue(f"A template has at most {MAX_BUTTONS} buttons, got {len(out)}.",
                           input=buttons)
    if sum(b["type"] == "url" for b in out) > MAX_URL_BUTTONS:
        raise InvalidValue(f"A template has at most {MAX_URL_BUTTONS} URL buttons.", input=buttons)
    return out or None


def check_parts(body, header=None, footer=None, buttons=None) -> dict:
    """The checked texts of a template; TemplateError / InvalidValue say what to fix."""
    body = _text("body", body, BODY_MAX, required=True)
    header = _text("header", header, HEADER_MAX)
    if header and len(render.placeholders(header)) > 1:
        raise TemplateError("A template header may have at most one placeholder.",
                            template=header, piece=header, position=0)
    footer = _text("footer", footer, FOOTER_MAX)
    if footer and render.placeholders(footer):
        raise TemplateError("A template footer cannot contain placeholders (WhatsApp shows it "
                            "as fixed text).", template=footer, piece=footer, position=0)
    return {"body": body, "header": header, "footer": footer, "buttons": check_buttons(buttons)}


def check_values(values: Mapping | None, what: str = "value") -> dict:
    """Fixed values or fallbacks given by the composer: valid names, insertable values."""
    out = {}
    for name, value in (values or {}).items():
        if not isinstance(name, str) or not render.NAME.fullmatch(name):
            raise InvalidValue(f"{name!r} is not a placeholder name (letters, digits, _).",
                               input=name)
        if value is None:
            continue
        out[name] = render.as_text(name, value)
    return out


# --- Cloud API shape -----------------------------------------------------------------------------

def cloud_language(code: str) -> str:
    """A template language for the Cloud API: ``de-AT`` -> ``de_AT``."""
    return str(code).replace("-", "_")


def cloud_payload(template: Mapping, params: Mapping | str | None) -> dict:
    """The ``template`` object of a Cloud API send with named parameters: header and body
    parameters carry ``parameter_name``; a URL button gets its URL's value."""
    values: Mapping = (json.loads(params) if isinstance(params, str) else params) or {}
    components: list[dict] = []
    header = render.placeholders(template.get("header") or "")
    if header:
        components.append({"type": "header", "parameters": [
            {"type": "text", "parameter_name": n, "text": str(values.get(n, ""))} for n in header]})
    body = render.placeholders(template.get("body") or "")
    if body:
        components.append({"type": "body", "parameters": [
            {"type": "text", "parameter_name": n, "text": str(values.get(n, ""))} for n in body]})
    for i, button in enumerate(template.get("buttons") or []):
        names = render.placeholders(button.get("url") or "") if button["type"] == "url" else []
        if names:
            components.append({"type": "button", "sub_type": "url", "index": str(i),
                               "parameters": [{"type": "text", "text": str(values.get(names[0], ""))}]})
    payload = {"name": template["name"], "language": {"code": cloud_language(template["language"])}}
    if components:
        payload["components"] = components
    return payload


# --- lookups inside a caller's transaction -------------------------------------------------------

def _decoded(found: dict) -> dict:
    """A templates row with its buttons decoded and its placeholders listed."""
    found["buttons"] = json.loads(found["buttons"]) if found.get("buttons") else None
    found["placeholders"] = placeholders(found)
    return found


def _find(con: duckdb.DuckDBPyConnection, account_id: int, ref, language: str | None = None):
    if isinstance(ref, Mapping) and "template_id" in ref:
        ref = ref["template_id"]
    if isinstance(ref, int) and not isinstance(ref, bool):
        cur = con.execute(f"SELECT {_COLUMNS} FROM templates WHERE account_id = ? "
                          "AND template_id = ?", [account_id, ref])
    elif isinstance(ref, str) and ref.strip():
        text = ref.strip()
        if text.isdigit():
            return _find(con, account_id, int(text), language)
        cur = con.execute(f"SELECT {_COLUMNS} FROM templates WHERE account_id = ? AND name = ? "
                          "AND (? IS NULL OR language = ?) ORDER BY template_id",
                          [account_id, text, language, language])
    else:
        return None
    found = store.one(cur)
    return None if found is None else _decoded(found)


def get_template(con, account: dict, ref, language: str | None = None) -> dict:
    """The template of ``account`` that ``ref`` names (template_id or name, in
    ``language`` when given); NotFound with the names there are otherwise."""
    found = _find(con, account["account_id"], ref, language)
    if found is None:
        names = [r[0] for r in con.execute("SELECT DISTINCT name FROM templates WHERE "
                                           "account_id = ? ORDER BY name",
                                           [account["account_id"]]).fetchall()]
        raise NotFound(f"Account {account['phone_e164']} has no template {ref!r}. Its templates: "
                       f"{', '.join(names[:20]) or 'none yet'}.", input=ref)
    return found


def check_text(con, account_id: int, text: str | None, *, extra=(), part: str = "body") -> list[str]:
    """The one check of a message text being written (a template's, a broadcast's): not
    empty when it is the body, safe placeholder syntax with names WhatsApp accepts, each
    filled by a contact field, account field or attribute of the account or named in
    ``extra``. Returns the placeholder names; TemplateError names the first bad one, its
    position and the names available. Saving a template runs the same checks."""
    if text is None or not str(text).strip():
        if part == "body":
            raise TemplateError("The message is empty; write the text.", template=text,
                                piece=None, position=0)
        return []
    check_placeholders(str(text))
    return placeholder_names.check(con, account_id, str(text), extra=extra, what=part)


def create_template(con, account: dict, name: str, body: str, *, language: str = "de",
            category: str = "marketing", header=None, footer=None, buttons=None,
            extra_placeholders=(), actor: str = "bizchat") -> dict:
    """Insert a checked template inside the caller's transaction: every placeholder must
    be one the account can fill (``messaging.placeholders``) or in ``extra_placeholders``
    (names the caller supplies itself, e.g. a broadcast's fixed values or fallbacks)."""
    name = check_name(name)
    language = check_language(language) or "de"
    category = check_category(category)
    parts = check_parts(body, header, footer, buttons)
    placeholder_names.check(con, account["account_id"], parts["header"], parts["body"],
                            *[b.get("url") for b in parts["buttons"] or []],
                            extra=extra_placeholders, what=f"template {name!r}")
    if _find(con, account["account_id"], name, language) is not None:
        raise Conflict(f"Account {account['phone_e164']} already has a template {name!r} in "
                       f"{language}. Pick another name or use the existing one.", input=name)
    template_id = store.next_id(con, "templates", "template_id")
    con.execute("""
        INSERT INTO templates (template_id, account_id, name, language, category, header, body,
                               footer, buttons, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [template_id, account["account_id"], name, language, category, parts["header"],
                 parts["body"], parts["footer"],
                 json.dumps(parts["buttons"], ensure_ascii=False) if parts["buttons"] else None,
                 datetime.now(UTC)])
    con.execute("""INSERT INTO audit_log ("at", actor, action, subject_key, details)
                   VALUES (?, ?, 'template.create', NULL, ?)""",
                [datetime.now(UTC), actor, json.dumps({"template_id": template_id,
                                                       "account_id": account["account_id"],
                                                       "name": name, "category": category})])
    return _find(con, account["account_id"], template_id)


def free_name(con, account_id: int, base: str, language: str) -> str:
    """``base``, or ``base_2``, ``base_3`` ... whichever the account does not use yet."""
    taken = {r[0] for r in con.execute(
        "SELECT name FROM templates WHERE account_id = ? AND language = ? AND "
        "(name = ? OR starts_with(name, ?))", [account_id, language, base, base + "_"]).fetchall()}
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


@dataclass(frozen=True)
class Rendered:
    """One rendered message: its parts and the whole text as the recipient reads it."""

    text: str
    params: dict = field(default_factory=dict)
    template: str | None = None
    variant: str | None = None
    state: str | None = None          # for a broadcast preview: queued or skipped
    skip_reason: str | None = None

    def __str__(self) -> str:
        return self.text


# --- the service ---------------------------------------------------------------------------------

class Templates:
    """Message templates of each account (``ws.templates``)."""

    def __init__(self, ws):
        self.ws = ws

    def create(self, account, name: str, body: str, *, language: str = "de",
               category: str = "marketing", header: str | None = None,
               footer: str | None = None, buttons=None, extra_placeholders=(),
               actor: str = "bizchat") -> dict:
        """Register a template. Unsafe placeholder syntax, or a placeholder that no contact
        field, account field or attribute of the account provides (and that is not in
        ``extra_placeholders``, names the sender will supply), raises TemplateError
        naming it, its position and the available names; a name the account uses
        already in this language Conflict."""
        with self.ws.transaction() as con:
            return create_template(con, get_account(con, account), name, body, language=language,
                           category=category, header=header, footer=footer, buttons=buttons,
                           extra_placeholders=extra_placeholders, actor=actor)

    def check_text(self, account, text: str, *, extra_placeholders=()) -> list[str]:
        """Check a text as saving it would, without saving (the composer validates as
        you type): returns its placeholder names, or raises TemplateError naming the
        unknown placeholder, its position (``.position``) and ``.available``."""
        with self.ws.connect(read_only=True) as con:
            account_id = get_account(con, account)["account_id"]
            return check_text(con, account_id, text, extra=extra_placeholders)

    def available_placeholders(self, account) -> list[str]:
        """The placeholder names the account's texts may use: contact fields
        (first_name, name), account fields (business_name) and the attribute keys present
        on its contacts. The composer's placeholder buttons and every check on save use it."""
        with self.ws.connect(read_only=True) as con:
            return placeholder_names.available(con, get_account(con, account)["account_id"])

    def get(self, account, ref, *, language: str | None = None) -> dict:
        """A template by template_id or name (optionally in ``language``)."""
        with self.ws.connect(read_only=True) as con:
            return get_template(con, get_account(con, account), ref, check_language(language))

    def list(self, account) -> pd.DataFrame:
        """The account's templates, with how many broadcasts use each."""
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            return con.execute("""
                SELECT t.template_id, t.name, t.language, t.category, t.header, t.body, t.footer,
                       t.buttons,
                       (SELECT count(*) FROM broadcasts b WHERE b.account_id = t.account_id
                          AND (b.template_id = t.template_id OR b.template = t.name)) AS broadcasts,
                       t.created_at
                FROM templates t WHERE t.account_id = ? ORDER BY t.template_id""",
                               [acc["account_id"]]).df()

    def delete(self, account, ref, *, actor: str = "bizchat") -> dict:
        """Delete a template no broadcast uses (a used one stays, as the record of what was
        sent)."""
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            found = get_template(con, acc, ref)
            used = con.execute("""
                SELECT count(*) FROM broadcasts
                WHERE account_id = ? AND (template_id = ? OR template = ?
                      OR list_contains(CAST(json_extract(variants, '$[*].template_id') AS INTEGER[]), ?))""",
                               [acc["account_id"], found["template_id"], found["name"],
                                found["template_id"]]).fetchall()[0][0]
            if used:
                raise Conflict(f"The template {found['name']!r} is used by {used} broadcast(s) and "
                               "stays as the record of what was sent.", input=ref)
            con.execute("DELETE FROM templates WHERE template_id = ?", [found["template_id"]])
            con.execute("""INSERT INTO audit_log ("at", actor, action, subject_key, details)
                           VALUES (?, ?, 'template.delete', NULL, ?)""",
                        [datetime.now(UTC), actor, json.dumps({"template_id": found["template_id"],
                                                               "name": found["name"]})])
            return found

    def preview(self, account, ref, contact=None, *, values: Mapping | None = None,
                fallbacks: Mapping | None = None, language: str | None = None) -> Rendered:
        """The exact text of the template for ``contact`` (any reference within the account)
        or, without one, for the given ``values`` alone. A placeholder without a value or
        fallback raises TemplateError naming it."""
        from ..people.contacts import get_contact

        fixed = check_values(values)
        fallbacks = check_values(fallbacks, "fallback")
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            template = get_template(con, acc, ref, check_language(language))
            person = get_contact(con, acc, contact) if contact is not None else {"name": None}
            offered = placeholder_names.available(con, acc["account_id"])
        names = placeholders(template)
        attrs = person.get("attributes") or {}
        attributes = pd.DataFrame({n: [json.dumps(attrs[n]) if n in attrs else None]
                                   for n in names})
        frame = value_frame(pd.DataFrame({"name": [person.get("name")]}), acc, names,
                            attributes, fixed)
        result = render_template(template, frame, fallbacks).iloc[0]
        if result["text"] is None:
            # Let the one renderer word the error (position); the names on offer are the
            # account's, not only those this contact happens to have.
            row = {k: v for k, v in frame.iloc[0].items() if v is not None}
            for text in (template.get("header"), template["body"],
                         *[b.get("url") for b in template.get("buttons") or []]):
                if text:
                    try:
                        render.render(text, row, missing=fallbacks or "error")
                    except TemplateError as exc:
                        offer = ", ".join("{" + n + "}" for n in offered)
                        raise TemplateError(
                            exc.message.split(" Available here:")[0]
                            + f" for this contact. Available in this account: {offer}. Give a "
                            "value or a fallback for it.",
                            placeholder=exc.fields.get("placeholder"),
                            available=offered) from exc
            raise TemplateError(f"A placeholder of {template['name']!r} has no value "
                                f"({result['missing']}).", placeholder=result["missing"])
        return Rendered(text=result["text"], params=json.loads(result["params"]),
                        template=template["name"])


__all__ = ["CATEGORIES", "Rendered", "Templates", "check_buttons", "check_name", "check_parts",
           "check_values", "cloud_language", "cloud_payload", "message_text", "placeholders",
           "render_frame", "render_template", "slug", "value_frame"]
