"""Writing the demo scenario: Arrow tables per schema table, and the receipts batch.

Every table goes in with ``INSERT INTO t (columns) SELECT columns FROM <arrow table>``;
receipts go through ``receipts.record_status_events`` like webhook statuses do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..people import phones
from . import content as C
from .campaigns import SKIPS, STATES, VARIANTS
from .clock import BERLIN, DAY, MIN, NEVER, NOW, NOW_US, S, ts


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _insert(con, table: str, data: dict) -> None:
    """Bulk insert: the dict's keys are the target columns (table and keys are our own)."""
    frame = pa.table(data)
    columns = ", ".join(f'"{c}"' for c in frame.column_names)
    con.register("_demo_rows", frame)
    try:
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _demo_rows")
    finally:
        con.unregister("_demo_rows")


def _take(values: list, idx) -> pa.Array:
    """values[idx] as an Arrow array; idx -1 gives NULL."""
    idx = np.asarray(idx, np.int64)
    return pa.array(values).take(pa.array(idx, mask=idx < 0))


def _local(us: int) -> str:
    return datetime.fromtimestamp(us / S, BERLIN).strftime("%d.%m.%Y %H:%M")


def write_tables(sc, con, seed: int) -> None:
    _accounts(con)
    _contacts(sc, con)
    _consent(sc, con)
    _labels(sc, con)
    _templates_and_broadcasts(sc, con)
    _messages(sc, con)
    _extras(con, seed, sc.n)


def _accounts(con) -> None:
    rows = [dict(a) for a in C.ACCOUNTS]
    for row in rows:
        phone = phones.parse(row.pop("phone"))   # number type and region as production sees them
        row.update(phone_e164=phone.e164, number_type=phone.number_type, region=phone.region,
                   business_hours=_json(C.BUSINESS_HOURS), timezone="Europe/Berlin",
                   created_at=NOW - timedelta(days=800))
    _insert(con, "accounts", {k: [r[k] for r in rows] for k in rows[0]})


def _contacts(sc, con) -> None:
    rng, n = sc.rng, sc.n
    country = sc.country
    languages = [C.LANGUAGES[c][u % len(C.LANGUAGES[c])]
                 for c, u in zip(country, rng.integers(0, 10**6, n), strict=True)]
    zone = [None if c == 0 and u < 0.3 else C.TIMEZONES[c] for c, u in zip(country, rng.random(n), strict=True)]
    berlin = rng.random(n) < np.where(sc.account == 2, 0.55, 0.25)
    city_idx = rng.integers(0, 1000, n)
    customer_no = rng.integers(100000, 999999, n)
    has_no = rng.random(n) < 0.65
    attributes = []
    for i in range(n):
        cities = C.CITIES[country[i]]
        attrs = {"city": "Berlin" if berlin[i] and country[i] == 0 else cities[city_idx[i] % len(cities)],
                 "favourite_genre": C.GENRES[sc.genre[i]]}
        if has_no[i]:
            attrs["customer_no"] = f"LB-{customer_no[i]}"
        attributes.append(_json(attrs))
    user_ids = [f"{C.COUNTRIES[c]}.{a}{b:012d}" for c, a, b in zip(
        country, rng.integers(10**7, 10**8, n), rng.integers(0, 10**12, n), strict=True)]
    _insert(con, "contacts", {
        "contact_id": np.arange(1, n + 1), "account_id": sc.account.astype(np.int32),
        "phone_e164": pc.binary_join_element_wise("+", sc.wa_id, ""), "wa_id": sc.wa_id,
        "user_id": user_ids, "name": sc.name.tolist(), "language": languages, "timezone": zone,
        "attributes": attributes, "created_at": ts(sc.created)})


def _consent(sc, con) -> None:
    """The ledger: service opt-in at sign-up; the marketing timeline drawn in demo._consent."""
    body, wamid = sc.msg["body"], sc.wamid
    rows = []   # (recorded_at, contact, purpose, action, source, evidence)
    files = {1: "newsletter_export_2024-11.csv", 2: "lesungen_gaesteliste_2025-02.csv"}
    for c in range(sc.n):
        created, channel = int(sc.created[c]), C.CHANNELS[sc.channel[c]]
        if channel == "chat":
            ev = f"Erste Nachricht des Kunden am {_local(created)}"
        else:
            ev = f"Mit der Anmeldung ({channel}) am {_local(created)}: Service-Nachrichten zu Bestellungen"
        rows.append((created, c, "service", "opt_in", channel, ev))
        if sc.mk_in[c] < NEVER:
            t = int(sc.mk_in[c])
            ev = {
                "double_opt_in_form": f"Double-Opt-in über lindenblatt-verlag.example/whatsapp: Formular "
                f"am {_local(created)}, bestätigt per Link am {_local(t)}. Text: „Ja, ich möchte "
                "Lesetipps und Angebote des Lindenblatt Verlags per WhatsApp erhalten. Abmeldung "
                "jederzeit mit STOPP.“",
                "in_store": f"Einwilligung an der Kasse im Lindenblatt Buchladen am {_local(t)}, "
                f"Formular EW-{c + 1:06d}",
                "chat": f"Im Chat am {_local(t)} zugestimmt: „Ja, gern!“ auf die Frage nach Lesetipps per WhatsApp",
                "import": f"Import aus {files[int(sc.account[c])]} mit Double-Opt-in-Nachweis des "
                "Newsletter-Systems",
            }[channel]
            rows.append((t, c, "marketing", "opt_in", channel, ev))
        if sc.mk_decline[c] < NEVER:
            rows.append((int(sc.mk_decline[c]), c, "marketing", "opt_out", "chat",
                         "Im Chat abgelehnt: „Nein, danke“"))
        for when, row, keyword, action, word in (
                (sc.mk_out[c], sc.stop_row[c], sc.mk_out_keyword[c], "opt_out", "stop"),
                (sc.mk_re[c], sc.start_row[c], sc.mk_re_chat[c], "opt_in", "resume")):
            if when == NEVER:
                continue
            if keyword:
                ev = f"Nachricht {wamid[int(row)].as_py()}: „{body[int(row)].as_py()}“"
                source = "keyword" if action == "opt_out" else "chat"
            else:
                ev, source = f"Webhook user_preferences: marketing_messages {word}", "user_preferences"
            rows.append((int(when), c, "marketing", action, source, ev))
    rows.sort(key=lambda r: (r[0], r[1]))
    times, who, purposes, actions, sources, evidences = zip(*rows, strict=True)
    contacts = np.array(who)
    _insert(con, "consent_events", {
        "event_id": np.arange(1, len(rows) + 1), "contact_id": contacts + 1,
        "account_id": sc.account[contacts].astype(np.int32), "purpose": list(purposes),
        "action": list(actions), "source": list(sources), "evidence": list(evidences),
        "recorded_at": ts(np.array(times))})


def _labels(sc, con) -> None:
    rng = sc.rng
    k = len(C.LABELS)
    _insert(con, "labels", {
        "label_id": np.arange(1, 2 * k + 1, dtype=np.int32),
        "account_id": np.repeat([1, 2], k).astype(np.int32), "name": C.LABELS * 2,
        "color": np.array(C.LABEL_COLORS * 2, np.int32),
        "created_at": ts(np.full(2 * k, NOW_US - 790 * DAY))})
    contact, label = np.nonzero(sc.label)
    label_id = (sc.account[contact] - 1) * k + label + 1
    room = np.minimum(NOW_US - sc.created[contact], 60 * DAY)
    assigned = sc.created[contact] + np.where(label == 0, MIN, (rng.random(len(contact)) * room).astype(np.int64))
    _insert(con, "contact_labels", {"contact_id": contact + 1, "label_id": label_id.astype(np.int32),
                                    "assigned_at": ts(assigned)})
    has, started, last_in, last = sc.chat_rows
    _insert(con, "chats", {
        "chat_id": np.arange(1, len(has) + 1), "account_id": sc.account[has].astype(np.int32),
        "contact_id": has + 1, "started_at": ts(started), "last_inbound_at": ts(last_in),
        "last_message_at": ts(last)})
    chat_p = np.array([0.8, 0.5, 0.3, 0.3, 0.5, 1.0])   # how often a contact label marks the chat too
    mark = sc.label[has] & (rng.random((len(has), k)) < chat_p)
    row, label = np.nonzero(mark)
    when = started[row] + (rng.random(len(row)) * (last[row] - started[row])).astype(np.int64)
    _insert(con, "chat_labels", {"chat_id": row + 1,
                                 "label_id": ((sc.account[has[row]] - 1) * k + label + 1).astype(np.int32),
                                 "assigned_at": ts(when)})


def _templates_and_broadcasts(sc, con) -> None:
    rng, plans, rc = sc.rng, sc.plans, sc.recipients
    t = C.TEMPLATES
    _insert(con, "templates", {
        "template_id": np.arange(1, len(t) + 1, dtype=np.int32),
        "account_id": np.array([x[0] for x in t], np.int32), "name": [x[1] for x in t],
        "language": ["de"] * len(t), "category": ["marketing"] * len(t),
        "body": [x[2] for x in t], "footer": ["Lindenblatt Verlag"] * len(t),
        "buttons": [_json(C.BUTTONS[x[3]]) if x[3] else None for x in t],
        "created_at": ts(np.full(len(t), NOW_US - 400 * DAY))})
    names = [x[1] for x in t]
    audience = [_json({"consent": "marketing", "labels_any": [C.LABELS[i] for i in p["labels"]]}
                      if p["labels"] else {"consent": "marketing", "everyone": True}) for p in plans]
    variants = [_json([{"variant": v, "template": names[tm], "share": s} for v, tm, s in p["variants"]])
                if p["ab"] else None for p in plans]
    finished = np.where(sc.plan_finished > 0, sc.plan_finished, [p["at"] for p in plans])
    _insert(con, "broadcasts", {
        "broadcast_id": np.array([p["id"] for p in plans]), "account_id": np.array([p["account"] for p in plans], np.int32),
        "name": [p["name"] for p in plans], "template": [names[p["template"]] for p in plans],
        "template_id": np.array([p["template"] + 1 for p in plans], np.int32),
        "language": ["de"] * len(plans),
        "category": ["marketing"] * len(plans), "audience": audience, "variants": variants,
        "control_fraction": [0.05 if p["ab"] else 0.0 for p in plans],
        "seed": rng.integers(0, 2**31, len(plans)), "status": ["done"] * len(plans),
        "scheduled_for": ts([p["at"] for p in plans]), "created_at": ts([p["frozen"] for p in plans]),
        "finished_at": ts(finished + S)})
    sc.idempotency = pc.binary_join_element_wise(
        "b", pa.array(rc["broadcast"]).cast(pa.string()), "-c",
        pa.array(rc["contact"] + 1).cast(pa.string()), "")
    codes = sorted(C.ERRORS)
    code_ix = np.where(rc["error"] > 0, np.searchsorted(np.array(codes), rc["error"]), -1)
    _insert(con, "broadcast_recipients", {
        "broadcast_id": rc["broadcast"], "contact_id": rc["contact"] + 1,
        "variant": _take(VARIANTS, rc["variant"]), "state": _take(STATES, rc["state"]),
        "skip_reason": _take(SKIPS, rc["skip"]), "idempotency_key": sc.idempotency,
        "message_id": sc.wamid.take(pa.array(rc["message_row"], mask=rc["message_row"] < 0)),
        "error_code": pa.array(rc["error"], mask=rc["error"] == 0),
        "error_title": _take([C.ERRORS[c][0] for c in codes], code_ix),
        "attempts": (rc["message_row"] >= 0).astype(np.int32),
        "sent_at": ts(np.where(rc["message_row"] >= 0, rc["at"], NEVER)),
        "body": rc["body"], "params": rc["params"], "wa_id": rc["wa_id"],
        "updated_at": ts(rc["updated"])})


def _messages(sc, con) -> None:
    m, o = sc.msg, sc.msg_order
    names = [x[1] for x in C.TEMPLATES]
    idx = pa.array(o)
    reply = m["reply_to"][o]
    _insert(con, "messages", {
        "message_id": sc.wamid.take(idx), "chat_id": sc.chat_of[m["contact"][o]],
        "account_id": sc.account[m["contact"][o]].astype(np.int32), "contact_id": m["contact"][o] + 1,
        "direction": _take(["in", "out"], m["direction"][o]), "kind": _take(C.KINDS, m["kind"][o]),
        "body": m["body"].take(idx), "media_mime": _take(C.MIMES, m["media"][o]),
        "reply_to": sc.wamid.take(pa.array(reply, mask=reply < 0)),
        "template_name": _take(names, m["template"][o]),
        "broadcast_id": pa.array(m["broadcast"][o], mask=m["broadcast"][o] == 0),
        "variant": _take(VARIANTS, np.where(m["broadcast"][o] > 0, m["variant"][o], -1)),
        "automatic": m["automatic"][o].astype(bool), "source": pa.repeat("demo", len(o)),
        "created_at": ts(m["created"][o])})


def _extras(con, seed: int, contacts: int) -> None:
    qr = [(a, s, t) for a in (1, 2) for s, t in C.QUICK_REPLIES]
    _insert(con, "quick_replies", {"account_id": np.array([a for a, _, _ in qr], np.int32),
                                   "shortcut": [s for _, s, _ in qr], "text": [t for _, _, t in qr],
                                   "created_at": ts(np.full(len(qr), NOW_US - 700 * DAY))})
    _insert(con, "automations", {
        "automation_id": np.arange(1, 5, dtype=np.int32), "account_id": np.array([1, 1, 2, 2], np.int32),
        "kind": ["greeting", "away"] * 2, "text": [C.GREETING, C.AWAY] * 2,
        "schedule": ["always", "outside_hours"] * 2, "scope": ["everyone"] * 4,
        "created_at": ts(np.full(4, NOW_US - 700 * DAY))})
    _insert(con, "audit_log", {
        "at": [datetime.now(UTC)], "actor": ["demo"], "action": ["demo.build"], "subject_key": [None],
        "details": [_json({"seed": seed, "contacts": contacts, "reference_now": NOW.isoformat()})]})


def events(sc) -> pa.Table:
    """The receipts of every outbound message, as the webhook would deliver them."""
    m, o = sc.msg, sc.msg_order
    out = o[m["direction"][o] == 1]
    parts = []
    for name in ("sent", "delivered", "read", "failed"):
        rows = out[m[name][out] <= NOW_US]
        parts.append((name, rows, m[name][rows]))
    rows = np.concatenate([r for _, r, _ in parts])
    at = np.concatenate([a for _, _, a in parts])
    status = np.concatenate([np.full(len(r), i) for i, (_, r, _) in enumerate(parts)])
    failed = status == 3
    code = np.where(failed, m["error"][rows], 0)
    codes = list(C.ERRORS)
    code_ix = np.where(failed, np.searchsorted(np.array(sorted(codes)), code), -1)
    ordered = sorted(codes)
    errors = [_json([{"code": c, "title": C.ERRORS[c][0], "message": C.ERRORS[c][0],
                      "error_data": {"details": C.ERRORS[c][1]}}]) for c in ordered]
    priced = (status <= 1) & (m["pricing"][rows] >= 0)
    pricing = np.where(priced, m["pricing"][rows], -1)
    callback = m["callback"][rows]
    lag = sc.rng.lognormal(np.log(0.8 * S), 0.7, len(rows)).astype(np.int64)
    return pa.table({
        "message_id": sc.wamid.take(pa.array(rows)), "status": _take(["sent", "delivered", "read", "failed"], status),
        "at": ts(at), "recipient_id": sc.wa_id.take(pa.array(m["contact"][rows])),
        "error_code": pa.array(code, pa.int32(), mask=~failed),
        "error_title": _take([C.ERRORS[c][0] for c in ordered], code_ix),
        "errors": _take(errors, code_ix), "pricing_category": _take(["marketing", "service"], pricing),
        "pricing_model": _take(["PMP"], np.where(priced, 0, -1)),
        "billable": pa.array(pricing == 0, mask=~priced),
        "callback_data": sc.idempotency.take(pa.array(callback, mask=callback < 0)),
        "received_at": ts(at + lag)})
