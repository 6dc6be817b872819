"""Rendering a template for many recipients at once, column by column.

The one safe renderer (``bizchat.messaging.render``) works on one message. A broadcast renders the
same template for up to millions of recipients, so this module applies the renderer's own
tokenizer (``render.parse``) and value conversion (``render.as_text``) to DataFrame
columns: every literal piece and every distinct value is handled once, and rows are
joined with Python's string ``+``. The result is exactly what ``render.render`` gives per
row (tests hold the two together); ``value_frame`` is ``render.contact_values`` for many
contacts. ``message_text`` lays a rendered template out as the recipient reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..messaging import render


def placeholders(template: Mapping) -> list[str]:
    """All placeholder names of a template (header, body, URL buttons) in order of use."""
    names: dict[str, None] = {}
    texts = [template.get("header"), template.get("body")]
    texts += [b.get("url") for b in (template.get("buttons") or []) if b.get("type") == "url"]
    for text in texts:
        for name in render.placeholders(text or ""):
            names.setdefault(name)
    return list(names)



def _map_unique(column: pd.Series, func) -> pd.Series:
    """``func`` applied once per distinct non-missing value of ``column`` and spread back;
    None where the value is missing (or ``func`` says None)."""
    codes, uniques = pd.factorize(column.to_numpy(dtype=object, na_value=None))
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [func(u) for u in uniques]
    mapped[-1] = None
    return pd.Series(mapped[codes], index=column.index, dtype=object)


def _as_text(name: str, column: pd.Series) -> pd.Series:
    """``render.as_text`` over a column, once per distinct value (text passes as it is)."""
    column = as_objects(column)
    kinds = {type(v) for v in pd.unique(column.dropna())} if len(column) else set()
    if kinds <= {str}:
        return column
    return _map_unique(column, lambda value: render.as_text(name, value))


def as_objects(column: pd.Series) -> pd.Series:
    """Object dtype with None for missing (pandas 3 infers a string dtype with NaN)."""
    return pd.Series(column.to_numpy(dtype=object, na_value=None), index=column.index,
                     dtype=object)


def _texts(piece, n: int) -> np.ndarray:
    """A text, or a column with None as "", as an object array. (``fill`` keeps the Python
    string: numpy's own str scalars would drop trailing NUL characters.)"""
    if isinstance(piece, str):
        out = np.empty(n, dtype=object)
        out.fill(piece)
        return out
    return piece.to_numpy(dtype=object, na_value="")


def _cat(index: pd.Index, *pieces) -> pd.Series:
    """Texts and columns joined row by row (Python's + per element, nothing lost)."""
    out = _texts("", len(index))
    for piece in pieces:
        out = np.add(out, _texts(piece, len(index)))
    return pd.Series(out, index=index, dtype=object)


def _column(values: pd.DataFrame, name: str) -> pd.Series:
    if name in values.columns:
        return as_objects(values[name])
    return pd.Series([None] * len(values), index=values.index, dtype=object)


def render_frame(text: str | None, values: pd.DataFrame,
                 fallbacks: Mapping | None = None) -> tuple[pd.Series, pd.Series]:
    """Render ``text`` for every row of ``values`` (one column per placeholder name).

    Returns (texts, missing): the text per row, or None where a placeholder had no value
    and no fallback; ``missing`` names the first such placeholder. The same tokens, value
    conversion and fallback rule as ``render.render(text, row, missing=fallbacks or
    "error")``.
    """
    n = len(values)
    index = values.index
    missing = pd.Series([None] * n, index=index, dtype=object)
    if not text:
        return pd.Series([None] * n, index=index, dtype=object), missing
    pieces: list = []
    fallbacks = fallbacks or {}
    for part in render.parse(text):
        if isinstance(part, str):
            pieces.append(part)
            continue
        name = part.name
        column = _column(values, name)
        absent = column.isna()
        fallback = fallbacks.get(name)
        if absent.any() and fallback is not None and not render.is_missing(fallback):
            column = column.where(~absent, fallback)
            absent = column.isna()
        missing = missing.where(~(absent & missing.isna()), name)
        pieces.append(_as_text(name, column).where(~absent, None))
    out = _cat(index, *pieces)
    return as_objects(out.where(missing.isna(), None)), as_objects(missing)


def _button_label(button: Mapping, url: str | None = None) -> str:
    if button["type"] == "url":
        return f"[{button['text']}: {url if url is not None else button.get('url')}]"
    return f"[{button['text']}]"


def message_text(header: str | None, body: str | None, footer: str | None,
                 buttons: list[dict] | None, urls: list[str | None] | None = None) -> str:
    """The whole message as the recipient reads it: header, body and footer as blocks
    separated by a blank line, then the buttons in brackets on one line."""
    blocks = [x for x in (header, body, footer) if x]
    if buttons:
        blocks.append(" ".join(_button_label(b, urls[i] if urls else None)
                               for i, b in enumerate(buttons)))
    return "\n\n".join(blocks)


def render_template(template: Mapping, values: pd.DataFrame,
                    fallbacks: Mapping | None = None) -> pd.DataFrame:
    """The rendered message per row of ``values``: columns text (the whole message as
    ``message_text`` lays it out; None when a placeholder is missing), missing (that
    placeholder's name) and params (JSON of the placeholder values used, for a Cloud API
    send). Vectorised: cost grows with distinct values, not Python work per row."""
    index = values.index
    fallbacks = fallbacks or {}
    header, missing = render_frame(template.get("header"), values, fallbacks)
    body, m_body = render_frame(template.get("body"), values, fallbacks)
    missing = missing.combine_first(m_body)
    pieces: list = [body]
    if template.get("header"):
        pieces = [header, "\n\n", *pieces]
    if template.get("footer"):
        pieces += ["\n\n", template["footer"]]
    buttons = template.get("buttons") or []
    for i, button in enumerate(buttons):
        pieces.append("\n\n" if i == 0 else " ")
        if button["type"] == "url" and render.placeholders(button["url"]):
            url, m_url = render_frame(button["url"], values, fallbacks)
            missing = missing.combine_first(m_url)
            pieces += ["[" + button["text"] + ": ", url, "]"]
        else:
            pieces.append(_button_label(button))
    text = _cat(index, *pieces)
    ok = missing.isna()
    names = placeholders(template)
    if names:
        pieces = ["{"]
        for i, name in enumerate(names):
            column = _column(values, name)
            if fallbacks.get(name) is not None:
                column = column.where(column.notna(), fallbacks[name])
            encoded = _map_unique(_as_text(name, column),
                                  lambda v: json.dumps(v, ensure_ascii=False))
            pieces += [("" if i == 0 else ", ") + json.dumps(name) + ": ",
                       encoded.where(encoded.notna(), "null")]
        params = _cat(index, *pieces, "}")
    else:
        params = pd.Series(["{}"] * len(values), index=index, dtype=object)
    return pd.DataFrame({"text": as_objects(text.where(ok, None)), "missing": as_objects(missing),
                         "params": as_objects(params.where(ok, None))}, index=index)


def value_frame(contacts: pd.DataFrame, account: Mapping, names, attributes: pd.DataFrame | None = None,
                fixed: Mapping | None = None) -> pd.DataFrame:
    """The placeholder values of many contacts, as ``render.contact_values`` gives them.

    ``contacts`` has ``name``; ``attributes`` has one column per wanted attribute name with
    its JSON text (``json_extract(attributes, '$.name')``). first_name / name come from the
    contact's name, business_name from the account, and an attribute of the same name only
    fills in where those are empty. ``fixed`` values (the composer's, the same for every
    recipient) win over everything.
    """
    index = contacts.index
    out = pd.DataFrame(index=index)
    raw_names = (as_objects(contacts["name"]) if "name" in contacts
                 else pd.Series([None] * len(index), index=index, dtype=object))
    business = account.get("display_name")
    business = business.strip() if isinstance(business, str) and business.strip() else None
    for name in names:
        attr = None
        if attributes is not None and name in attributes.columns:
            attr = _map_unique(attributes[name], _attribute)
        if name == "name":
            col = _map_unique(raw_names, lambda n: " ".join(n.split()) if isinstance(n, str)
                              and n.strip() else None)
        elif name == "first_name":
            col = _map_unique(raw_names, lambda n: n.split()[0] if isinstance(n, str)
                              and n.strip() else None)
        elif name == "business_name":
            col = pd.Series([business] * len(index), index=index, dtype=object)
        else:
            col = pd.Series([None] * len(index), index=index, dtype=object)
        if attr is not None:
            col = col.where(col.notna(), attr)
        out[name] = as_objects(col)
    for name, value in (fixed or {}).items():
        if name in out.columns or name in names:
            out[name] = pd.Series([value] * len(index), index=index, dtype=object)
    return out


def _attribute(text: str):
    """A JSON attribute value as contact_values takes it: text or a number, else nothing."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return None if render.is_missing(value) else value


__all__ = ["message_text", "placeholders", "render_frame", "render_template", "value_frame"]
