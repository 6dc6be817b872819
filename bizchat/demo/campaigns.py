"""Demo campaigns: twelve months of broadcasts per account, their receipts and replies.

The audience of each broadcast is frozen a day or two before it is sent, from contacts
with a marketing opt-in at that moment (the consent rule), and checked again at send time:
whoever opted out in between is skipped. Read rates depend on the contact's engagement,
labels, the template, and the weekday and hour of sending.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import content as C
from .clock import DAY, HOUR, MIN, NEVER, NOW, NOW_US, S, local_us, next_open

MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
          "Oktober", "November", "Dezember"]
STATES = ["sent", "failed", "skipped"]
SKIPS = ["opted_out", "control", "frequency_cap"]
VARIANTS = ["A", "B", "control"]
LABEL_EFFECT = np.array([0.3, 0.3, 0.35, 0.0, 0.2, 0.8])   # per C.LABELS, on the read logit
SEND_RATE = 80.0                                              # messages per second


def _template_index() -> dict:
    return {(t[0], t[1]): i for i, t in enumerate(C.TEMPLATES)}


def schedule(rng) -> list[dict]:
    """The broadcasts of both accounts over the twelve months before NOW, in time order."""
    first = (NOW - timedelta(days=365)).date()
    last = (NOW - timedelta(days=2)).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    tix = _template_index()
    plans = []

    def add(account, template, day, hour, minute=0, labels=(), fill=None, name="", ab=False):
        plans.append(dict(account=account, template=tix[account, template], day=day, hour=hour,
                          minute=minute, labels=labels, fill=fill or {}, name=name, ab=ab))

    def book(kind):
        pool = C.BOOKS[kind]
        titel, autor, alter = pool[rng.integers(len(pool))]
        return {"titel": titel, "autor": autor, "alter": alter,
                "teaser": C.TEASERS[rng.integers(len(C.TEASERS))]}

    kids, crime, event, vip = [C.LABELS.index(x) for x in ("Kinderbuch", "Krimi", "Lesung", "VIP")]
    weeks, tip_day = 0, 3
    for day in days:
        month, week = MONTHS[day.month - 1], day.isocalendar().week
        first_sat = day.weekday() == 5 and day.day <= 7
        if day.weekday() == 0:   # this week's tip goes out on Thursday, or else on Sunday
            tip_day = 3 if rng.random() < 0.75 else 6
        if day.weekday() == tip_day:
            hour = int(rng.choice([10, 12, 18, 19, 20])) if tip_day == 3 else int(rng.choice([10, 17]))
            add(1, "wochentipp", day, hour, 0, (), book("kids" if rng.random() < 0.5 else "crime"),
                f"Wochentipp KW {week}/{day.year}", ab=rng.random() < 0.3)
        if first_sat:
            add(1, "kinderbuch_neu", day, 9, 30, (kids,), book("kids"),
                f"Kinderbuch-Neuheit {month} {day.year}")
        if day.weekday() == 4 and (day + timedelta(days=7)).month != day.month:
            add(1, "krimi_des_monats", day, 19, 0, (crime,), book("crime"),
                f"Krimi des Monats {month} {day.year}")
        if day.weekday() == 0:
            weeks += 1
            add(2, "veranstaltungen_woche", day, int(rng.choice([9, 11, 17])), 0, (), book("kids"),
                f"Veranstaltungen KW {week}/{day.year}")
            if weeks % 3 == 1:
                fill = book("crime" if rng.random() < 0.6 else "kids")
                fill["datum"] = (day + timedelta(days=12)).strftime("%d.%m.%Y")
                add(1, "lesung_einladung", day + timedelta(days=1), 11, 0, (event,), fill,
                    f"Lesung {fill['autor']} am {fill['datum']}")
            if weeks % 2 == 0:
                fill = book("crime" if rng.random() < 0.5 else "kids")
                fill["datum"] = (day + timedelta(days=9)).strftime("%d.%m.%Y")
                add(2, "lesung_einladung", day + timedelta(days=2), 18, 0, (event,), fill,
                    f"Lesung im Buchladen: {fill['autor']} am {fill['datum']}")
            if weeks % 9 == 4:
                add(1, "vip_vorab", day + timedelta(days=2), 17, 0, (vip,), book("crime"),
                    f"VIP-Vorab {month} {day.year}")
            if weeks % 13 == 6:
                fill = book("crime")
                fill["datum"] = (day + timedelta(days=18)).strftime("%d.%m.%Y")
                add(2, "krimi_nacht", day + timedelta(days=4), 12, 0, (crime,), fill,
                    f"Krimi-Nacht {fill['datum']}")
        if day.weekday() == 3 and (day + timedelta(days=2)).day <= 7:
            add(2, "vorlesestunde", day, 16, 0, (kids,), book("kids"), f"Vorlesestunde {month} {day.year}")
        for (m, d), anlass, angebot in C.SEASONS:
            if (day.month, day.day) == (m, d):
                until = (day + timedelta(days=10)).strftime("%d.%m.%Y")
                add(1, "saison_angebot", day, 10, 0, (), {"anlass": anlass, "angebot": angebot,
                                                         "datum": until}, f"{anlass} {day.year}")
    for plan in plans:
        plan["at"] = local_us(plan["day"], plan["hour"], plan["minute"])
        # The audience is frozen when the broadcast is composed, one to three days earlier.
        plan["frozen"] = plan["at"] - int((1 + 2 * rng.random()) * DAY)
    plans.sort(key=lambda p: (p["at"], p["account"]))
    for i, plan in enumerate(plans, start=1):
        plan["id"] = i
        plan["variants"] = ([("A", plan["template"], 0.475),
                             ("B", _template_index()[1, "wochentipp_kurz"], 0.475)]
                            if plan["ab"] else [(None, plan["template"], 1.0)])
    return plans


def _render(template: int, fill: dict) -> tuple[str, str]:
    """The rendered body around {first_name}: (head, tail)."""
    body = C.TEMPLATES[template][2].format_map({**fill, "first_name": "\x00"})
    head, tail = body.split("\x00")
    return head, tail


def broadcasts(sc) -> None:
    """Freeze audiences, send, and draw every message's fate."""
    rng = sc.rng
    sc.plans = plans = schedule(rng)
    heads: list[str] = []
    tails: list[str] = []
    params: list[str] = []
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("broadcast", "contact", "variant", "state", "skip", "at", "render")}
    msg_parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("contact", "created", "plan", "variant", "recipient")}
    n_rc = 0
    # The frequency cap: the times of each contact's latest marketing sends, oldest first.
    cap = {a["account_id"]: (a["marketing_cap_count"], a["marketing_cap_days"] * DAY)
           for a in C.ACCOUNTS}
    recent = np.full((sc.n, max(c for c, _ in cap.values())), -NEVER)
    for p_i, plan in enumerate(plans):
        cand = np.flatnonzero((sc.account == plan["account"]) & (sc.created < plan["frozen"]))
        if plan["labels"]:
            cand = cand[sc.label[cand][:, list(plan["labels"])].any(axis=1)]
        cand = cand[sc.opted_in(plan["frozen"], cand)]
        k = len(cand)
        send = plan["at"] + (np.arange(k) / SEND_RATE * S).astype(np.int64) + rng.integers(0, S, k)
        if plan["ab"]:
            u = rng.random(k)
            variant = np.where(u < 0.05, 2, np.where(u < 0.525, 0, 1))
        else:
            variant = np.full(k, -1)
        # Checked again when sending: an opt-out since the freeze means skip; so does
        # reaching the account's cap of marketing messages per contact and period.
        ok = sc.opted_in(plan["at"], cand) & sc.opted_in(send, cand)
        count, days = cap[plan["account"]]
        capped = recent[cand, -count] > send - days
        skip = np.select([variant == 2, ~ok, capped], [1, 0, 2], -1)
        state = np.where(skip >= 0, 2, 0)
        go = np.flatnonzero(state == 0)
        recent[cand[go]] = np.column_stack([recent[cand[go], 1:], send[go]])
        render_base = len(heads)
        for _, template, _ in plan["variants"]:
            h, t = _render(template, plan["fill"])
            heads.append(h)
            tails.append(t)
            used = {k: v for k, v in plan["fill"].items() if "{" + k + "}" in C.TEMPLATES[template][2]}
            params.append(_json(used)[1:-1])
        for kk, v in (("broadcast", np.full(k, plan["id"])), ("contact", cand), ("variant", variant),
                      ("state", state), ("skip", skip), ("at", send),
                      ("render", np.where(variant == 2, -1, render_base + np.maximum(variant, 0)))):
            parts[kk].append(v)
        msg_parts["contact"].append(cand[go])
        msg_parts["created"].append(send[go])
        msg_parts["plan"].append(np.full(len(go), p_i))
        msg_parts["variant"].append(variant[go])
        msg_parts["recipient"].append(n_rc + go)
        n_rc += k
    rc = {k: np.concatenate(v) for k, v in parts.items()}
    msg = {k: np.concatenate(v) for k, v in msg_parts.items()}
    _freeze(sc, rc, heads, tails, params)
    _send(sc, plans, rc, msg)


def _freeze(sc, rc, heads, tails, params) -> None:
    """What scheduling froze per recipient: the rendered text, the placeholder values and
    the address (the hold-out group gets none)."""
    render = pa.array(rc["render"], mask=rc["render"] < 0)
    c = pa.array(rc["contact"])
    first = pa.array(sc.first_name.tolist())
    rc["body"] = pc.binary_join_element_wise(
        pa.array(heads).take(render), first.take(c), pa.array(tails).take(render), "")
    named = pa.array([_json(f) for f in sc.first_name])
    rc["params"] = pc.binary_join_element_wise(
        '{"first_name": ', named.take(c),
        pa.array([", " + p if p else "" for p in params]).take(render), "}", "")
    rc["wa_id"] = sc.wa_id.take(c)


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _send(sc, plans, rc, msg) -> None:
    rng = sc.rng
    c, created, plan = msg["contact"], msg["created"], msg["plan"]
    # Column 0: the template of variant A (or the only one), column 1: variant B.
    template = np.array([[p["variants"][0][1], p["variants"][-1][1]] for p in plans], np.int64)
    tmpl = template[plan, np.maximum(msg["variant"], 0)]
    at = np.array([p["at"] for p in plans])
    hour = np.array([p["hour"] for p in plans])[plan]
    weekday = np.array([p["day"].weekday() for p in plans])[plan]
    effect = (0.55 + 1.1 * sc.engagement[c]
              + np.array([t[4] for t in C.TEMPLATES])[tmpl]
              + np.where((hour >= 17) & (hour <= 21), 0.35, np.where(hour <= 10, -0.15, 0.1))
              + np.where(weekday >= 5, 0.25, 0.0)
              + sc.label[c].astype(float) @ LABEL_EFFECT
              + np.where(at[plan] - sc.created[c] < 60 * DAY, 0.3, 0.0))
    out = sc.outcomes(c, created, 1 / (1 + np.exp(-effect)), 35 * MIN, pricing=0)
    u = rng.random(len(c))
    error = np.where((created > sc.gone[c]) | ((u >= 0.008) & (u < 0.0105)), 131026,
                     np.where(u < 0.008, 131049, np.where(u < 0.011, 131000, 0))).astype(np.int32)
    failed = error > 0
    out["failed"] = np.where(failed, created + (rng.lognormal(np.log(5 * S), 0.6, len(c))).astype(np.int64),
                             NEVER)
    for key in ("sent", "delivered", "read"):
        out[key] = np.where(failed, NEVER, out[key])
    out["error"] = error
    body = rc["body"].take(pa.array(msg["recipient"]))   # the text frozen at scheduling
    rows = sc.add_messages(c, created, 1, C.KINDS.index("template"), body, template=tmpl,
                           broadcast=np.array([p["id"] for p in plans])[plan],
                           variant=msg["variant"], callback=msg["recipient"], **out)
    # The recipients' final state follows their message's fate.
    rc["message_row"] = np.full(len(rc["contact"]), -1)
    rc["message_row"][msg["recipient"]] = rows
    rc["error"] = np.zeros(len(rc["contact"]), np.int32)
    rc["error"][msg["recipient"]] = error
    rc["state"][msg["recipient"][failed]] = STATES.index("failed")
    last = np.maximum.reduce([np.where(out[k] < NEVER, out[k], 0)
                              for k in ("sent", "delivered", "read", "failed")])
    rc["updated"] = rc["at"].copy()
    rc["updated"][msg["recipient"]] = np.maximum(last, created)
    sc.recipients = rc
    sc.bc = {"rows": rows, "contact": c, "template": tmpl, "read": out["read"],
             "delivered": out["delivered"], "created": created}
    sc.plan_finished = np.zeros(len(plans), np.int64)
    np.maximum.at(sc.plan_finished, plan, created)


def replies(sc) -> None:
    """Some readers answer within 72 h (text or a button); staff answer most of them."""
    rng, bc = sc.rng, sc.bc
    read = np.flatnonzero(bc["read"] < NEVER)
    tmpl, c = bc["template"][read], bc["contact"][read]
    effect = -3.9 + np.array([t[5] for t in C.TEMPLATES])[tmpl] + 0.5 * sc.engagement[c]
    pick = rng.random(len(read)) < 1 / (1 + np.exp(-effect))
    read, tmpl, c = read[pick], tmpl[pick], c[pick]
    delay = np.minimum(rng.lognormal(np.log(8 * MIN), 1.4, len(read)), 72 * HOUR - MIN)
    at = bc["read"][read] + delay.astype(np.int64)
    keep = at < NOW_US
    read, tmpl, c, at = read[keep], tmpl[keep], c[keep], at[keep]
    pool = np.array([list(C.REPLIES).index(C.TEMPLATES[t][6]) for t in tmpl], dtype=np.int64)
    texts, kinds = [], []
    u, v = rng.random(len(read)), rng.random(len(read))
    for t, p, uu, vv in zip(tmpl, pool, u, v, strict=True):
        if C.TEMPLATES[t][3] == "rsvp" and uu < 0.6:
            texts.append("Ja, bitte reservieren" if vv < 0.75 else "Nein, danke")
            kinds.append(C.KINDS.index("button"))
        else:
            options = C.REPLIES[list(C.REPLIES)[p]]
            texts.append(options[int(vv * len(options))])
            kinds.append(C.KINDS.index("text"))
    rows = sc.add_messages(c, at, 0, np.array(kinds), texts, reply_to=bc["rows"][read])
    # Staff answer three in four, in business hours, inside the 24-hour window.
    answered = rng.random(len(rows)) < 0.75
    when = next_open(at + MIN) + rng.lognormal(np.log(20 * MIN), 1.0, len(rows)).astype(np.int64)
    answered &= (when - at < 24 * HOUR) & (when < NOW_US)
    idx = np.flatnonzero(answered)
    texts = [C.REPLY_ANSWERS[list(C.REPLIES)[p]][int(x * len(C.REPLY_ANSWERS[list(C.REPLIES)[p]]))]
             for p, x in zip(pool[idx], rng.random(len(idx)), strict=True)]
    out = sc.outcomes(c[idx], when[idx], 0.9, 10 * MIN, pricing=1)
    sc.add_messages(c[idx], when[idx], 1, C.KINDS.index("text"), texts, reply_to=rows[idx], **out)
