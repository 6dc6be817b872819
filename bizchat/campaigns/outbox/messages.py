"""The outbound batch: each recipient's frozen message in the transport's columns.

The template (per variant, from ``broadcasts.variants``), its language, the frozen text
and placeholder values (split into header, body and button parameters for the Cloud
API), the paced send time, and the contact's labels (the simulated platform's read rates
depend on them).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ...messaging import render
from ..transports.base import MESSAGE_FIELDS


def outbound(run, go: pd.DataFrame) -> pd.DataFrame:
    """The batch as the transport's columns (OutboundMessage fields)."""
    b, account = run.broadcast, run.account
    go = go.reset_index(drop=True)   # columns are passed as Series: no object round trips
    names, languages = variant_templates(b)
    variant = go["variant"]
    template = variant.map(names).astype(object)
    template = template.where(template.notna(), b.get("template"))
    frame = pd.DataFrame({
        "idempotency_key": go["key"],
        "phone_number_id": account.get("phone_number_id"),
        "to": go["to"],
        "kind": np.where(template.notna().to_numpy(), "template", "text"),
        "template_name": template,
        "language": variant.map(languages).astype(object).fillna(b.get("language") or "de"),
        "params": (pd.Series(_structured_params(run, go), dtype=object)
                   if run.transport.needs_params else go["params"]),
        "body": go["body"],
        "send_at": go["send_at"],
        "attempt": go["attempt"],
        "account_id": account["account_id"],
        "contact_id": go["contact_id"],
        "broadcast_id": b["broadcast_id"],
        "variant": variant,
        "category": b["category"],
        "labels": go["labels"],
    })
    return frame[MESSAGE_FIELDS]


def variant_templates(broadcast: dict) -> tuple[dict, dict]:
    """variant -> template name and language, from ``broadcasts.variants``."""
    names, languages = {}, {}
    variants = broadcast.get("variants")
    if isinstance(variants, str):
        variants = json.loads(variants)
    for v in variants or []:
        template = v.get("template")
        if isinstance(template, dict):
            names[v.get("variant")] = template.get("name")
            if template.get("language"):
                languages[v.get("variant")] = template["language"]
        elif template:
            names[v.get("variant")] = template
            if v.get("language"):
                languages[v.get("variant")] = v["language"]
    return names, languages


def _structured_params(run, go: pd.DataFrame) -> list:
    """Each recipient's frozen placeholder values split the way the template uses them:
    ``{"header": {...}, "body": {...}, "buttons": [{"index": i, "text": ...}]}``."""
    templates = run.templates
    out = []
    for variant, raw in zip(go["variant"], go["params"], strict=True):
        values = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        parts = templates.get(variant)
        if parts is None:   # no registered template known: all values fill the body
            out.append(values)
            continue
        header, body, buttons = parts
        entry: dict[str, object] = {"body": {n: values.get(n, "") for n in body}}
        if header:
            entry["header"] = {n: values.get(n, "") for n in header}
        if buttons:
            entry["buttons"] = [{"index": i, "sub_type": "url", "text": values.get(n, "")}
                                for i, n in buttons]
        out.append(entry)
    return out


def templates(con, b: dict) -> dict:
    """variant -> (header names, body names, [(button index, url name)]) of its template."""
    variants = b.get("variants")
    variants = json.loads(variants) if isinstance(variants, str) else (variants or [])
    ids = {v.get("variant"): v.get("template_id") for v in variants if v.get("template_id")}
    if not ids and b.get("template_id"):
        ids = {"A": b["template_id"]}
    parts = {}
    if ids:
        rows = con.execute("SELECT template_id, header, body, CAST(buttons AS VARCHAR) "
                           "FROM templates WHERE list_contains(?, template_id)",
                           [list(ids.values())]).fetchall()
        by_id = {r[0]: r[1:] for r in rows}
        for variant, template_id in ids.items():
            if template_id in by_id:
                header, body, buttons = by_id[template_id]
                urls = [(i, render.placeholders(x.get("url") or "")) for i, x in
                        enumerate(json.loads(buttons) if buttons else []) if x.get("type") == "url"]
                parts[variant] = (render.placeholders(header or ""), render.placeholders(body),
                                  [(i, names[0]) for i, names in urls if names])
    return parts


def labels_of(con, run, go: pd.DataFrame) -> list:
    """Label names per recipient (None: no labels), for the simulated platform's read
    rates."""
    if not run.transport.wants_labels or go.empty:
        return [None] * len(go)
    con.register("_label_ids", go[["contact_id"]])
    try:
        found = con.execute("""
            SELECT cl.contact_id, list(l.name ORDER BY l.name) AS names
            FROM contact_labels cl JOIN labels l USING (label_id)
            WHERE cl.contact_id IN (SELECT contact_id FROM _label_ids)
            GROUP BY cl.contact_id""").df()
    finally:
        con.unregister("_label_ids")
    if found.empty:
        return [None] * len(go)
    names = dict(zip(found["contact_id"], found["names"], strict=True))
    return [tuple(names[c]) if c in names else None for c in go["contact_id"]]


# --- small helpers -----------------------------------------------------------------------
