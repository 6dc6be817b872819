"""Placeholder names an account's texts may use, checked when a text is saved.

One function decides what is available for an account (``available``): the contact
fields every contact can fill (``first_name``, ``name``), the account fields
(``business_name``), and the contact attribute keys present on at least one of the
account's contacts (valid placeholder names only). Quick replies, automations and
broadcast templates are checked against it on save (``check``): a placeholder nobody
provides is refused with its name, its position and the available names, instead of
surfacing later as every recipient skipped for ``missing_placeholder``. The same list is
what previews offer. A caller that supplies more names itself (a broadcast's fixed values
or fallbacks) passes them as ``extra``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import TemplateError
from . import render


def available(con, account_id: int) -> list[str]:
    """The placeholder names texts of this account may use, standard ones first."""
    rows = con.execute("""
        SELECT DISTINCT k FROM (
            SELECT unnest(json_keys(attributes)) AS k FROM contacts
            WHERE account_id = ? AND attributes IS NOT NULL
              AND json_type(attributes) = 'OBJECT')
        ORDER BY k""", [account_id]).fetchall()
    standard = list(render.STANDARD_PLACEHOLDERS)
    found = [r[0] for r in rows if isinstance(r[0], str) and render.NAME.fullmatch(r[0])]
    return standard + [k for k in found if k not in standard]


def check(con, account_id: int, *texts: str | None, extra: Iterable[str] = (),
          what: str = "text") -> list[str]:
    """Refuse a text using a placeholder no contact field, account field, attribute or
    ``extra`` name provides (TemplateError naming it, its position and the available
    names). Returns the placeholder names used."""
    known = available(con, account_id) + [n for n in extra if n]
    used: list[str] = []
    for text in texts:
        if not text:
            continue
        try:
            used += render.validate(text, known)
        except TemplateError as exc:
            if exc.fields.get("placeholder"):
                # Said at save time: nothing fills it, rather than "has no value".
                head = exc.message.split(" has no value.")[0]
                offer = ", ".join("{" + k + "}" for k in known)
                exc.message = (f"The {what}: {head} is not filled by any contact field, "
                               f"account field or contact attribute of this account. "
                               f"Available: {offer}. Fix the name.")
                exc.fields["available"] = known
                setattr(exc, "available", known)  # noqa: B010 - structured field, as fields
            else:
                exc.message = f"The {what}: {exc.message}"
            exc.args = (exc.message,)
            raise
    return list(dict.fromkeys(used))


__all__ = ["available", "check"]
