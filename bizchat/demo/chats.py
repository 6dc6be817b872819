"""Demo chats: customer-service threads, away and greeting messages, STOPP and START.

Threads alternate customer and staff; staff answer in business hours, so a message on a
Saturday evening waits until Monday, and an answer later than 24 hours after the
customer's last message fails with 131047 (the service window closed) unless someone
answered from home first.
"""

from __future__ import annotations

import numpy as np

from . import content as C
from .clock import DAY, HOUR, MIN, NEVER, NOW_US, S, local_parts, next_open, offset

TEXT, IMAGE, AUDIO, DOCUMENT, STICKER = (C.KINDS.index(k) for k in
                                         ("text", "image", "audio", "document", "sticker"))


def _pick(rng, options: list, m: int) -> np.ndarray:
    return np.array(options, dtype=object)[rng.integers(0, len(options), m)]


def _latest_before(sc, contact, at, window):
    """Per (contact, at): the row of the latest broadcast message to that contact in the
    ``window`` before ``at``, else -1."""
    bc = sc.bc
    t0 = NOW_US - 1000 * DAY
    key = bc["contact"].astype(np.int64) * 10**9 + (bc["created"] - t0) // S
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    query = contact.astype(np.int64) * 10**9 + (at - t0) // S
    pos = np.searchsorted(sorted_key, query, side="right") - 1
    found = pos >= 0
    hit = order[np.maximum(pos, 0)]
    ok = found & (bc["contact"][hit] == contact) & (at - bc["created"][hit] <= window)
    return np.where(ok, bc["rows"][hit], -1)


def keyword_messages(sc) -> None:
    """STOPP (and later START) typed in the chat: the messages behind those consent events."""
    rng, n = sc.rng, sc.n
    sc.stop_row, sc.start_row = np.full(n, -1), np.full(n, -1)
    for kind in ("stop", "start"):
        if kind == "stop":
            who = np.flatnonzero((sc.mk_out < NEVER) & sc.mk_out_keyword)
            at, words, answer = sc.mk_out[who], C.STOP_WORDS, C.STOP_CONFIRM
            reply_to = _latest_before(sc, who, at, 7 * DAY)
        else:
            who = np.flatnonzero((sc.mk_re < NEVER) & sc.mk_re_chat)
            at, words, answer = sc.mk_re[who], C.START_WORDS, C.START_CONFIRM
            reply_to = np.full(len(who), -1)
        rows = sc.add_messages(who, at - 2 * S, 0, TEXT, _pick(rng, words, len(who)).tolist(),
                               reply_to=reply_to)
        (sc.stop_row if kind == "stop" else sc.start_row)[who] = rows
        out = sc.outcomes(who, at + 3 * S, 0.8, 5 * MIN, pricing=1)
        sc.add_messages(who, at + 3 * S, 1, TEXT, [answer] * len(who), reply_to=rows, **out)


def _thread_starts(sc, contact, first):
    """When each thread opens: a new chat contact's first thread at sign-up, others at a
    random day of the contact's life at a plausible local hour."""
    rng, m = sc.rng, len(contact)
    created = sc.created[contact]
    t = created + (rng.random(m) * (NOW_US - created)).astype(np.int64)
    day, _, _ = local_parts(t)
    tod = rng.choice(24, m, p=C.HOUR_P) * HOUR + (rng.random(m) * HOUR).astype(np.int64)
    t = day * DAY + tod
    t -= offset(t)
    t = np.clip(t, created + MIN, NOW_US)
    return np.where(first, created, t)


def service_threads(sc) -> None:
    rng, n = sc.rng, sc.n
    by_chat = sc.channel == 2
    count = rng.poisson(np.where(by_chat, 1.7, 1.4)) + by_chat
    contact = np.repeat(np.arange(n), count)
    first = by_chat[contact] & (np.arange(len(contact)) == np.repeat(np.cumsum(count) - count, count))
    m = len(contact)
    start = _thread_starts(sc, contact, first)
    names = list(C.TOPICS)
    topic = rng.choice(len(names), m, p=[C.TOPICS[x][0] for x in names])
    length = rng.choice([2, 3, 4, 5, 6, 7, 8, 10, 12], m, p=[.1, .1, .2, .15, .15, .1, .1, .06, .04])

    # Greeting for a new contact's first message in business hours, away message otherwise.
    closed = next_open(start) > start
    auto = np.flatnonzero((first | closed) & (start <= sc.gone[contact]))
    text = np.where(closed[auto], C.AWAY, C.GREETING).tolist()
    out = sc.outcomes(contact[auto], start[auto] + 2 * S, 0.85, 2 * MIN, pricing=1)
    sc.add_messages(contact[auto], start[auto] + 2 * S, 1, TEXT, text, automatic=True, **out)

    t = start.copy()
    for k in range(int(length.max())):
        live = np.flatnonzero(length > k)
        c, prev = contact[live], t[live]
        if k % 2 == 0:   # the customer
            if k == 0:
                now = prev
                body = np.array([C.TOPICS[names[x]][1][rng.integers(len(C.TOPICS[names[x]][1]))]
                                 for x in topic[live]], object)
            else:
                now = prev + rng.lognormal(np.log(6 * MIN), 1.3, len(live)).astype(np.int64)
                body = _pick(rng, C.FOLLOW_IN, len(live))
            u = rng.random(len(live))
            kind = np.where(k == 0, TEXT, np.select([u < 0.05, u < 0.09, u < 0.10],
                                                    [IMAGE, AUDIO, STICKER], TEXT))
            kind = np.where((k == 2) & (topic[live] == names.index("reklamation")) & (u > 0.5),
                            IMAGE, kind)
            media = np.select([kind == IMAGE, kind == AUDIO, kind == STICKER], [0, 1, 3], -1)
            no_text = np.full(len(live), None, object)
            texts = np.where(kind == IMAGE, _pick(rng, C.CAPTIONS, len(live)),
                             np.where(kind == TEXT, body, no_text))
            bodies = [b or None for b in texts]
            keep = now <= np.minimum(NOW_US, sc.gone[c])
            sc.add_messages(c[keep], now[keep], 0, kind[keep], [b for b, f in zip(bodies, keep, strict=True) if f],
                            media=media[keep])
        else:           # staff, in business hours
            now = next_open(prev + 30 * S) + rng.lognormal(np.log(15 * MIN), 1.0, len(live)).astype(np.int64)
            # Past the 24-hour window: usually someone answers from home, else it fails.
            late = now - prev > 23 * HOUR
            rescue = late & (rng.random(len(live)) < 0.8)
            now = np.where(rescue, prev + np.minimum(rng.lognormal(np.log(2 * HOUR), 0.8, len(live)),
                                                     23 * HOUR).astype(np.int64), now)
            fails = late & ~rescue
            if k == 1:
                body = np.array([C.TOPICS[names[x]][2][rng.integers(len(C.TOPICS[names[x]][2]))]
                                 for x in topic[live]], object)
            else:
                body = _pick(rng, C.FOLLOW_OUT, len(live))
            doc = (k == 3) & (topic[live] == names.index("rechnung"))
            kind = np.where(doc, DOCUMENT, TEXT)
            body = np.where(doc, _pick(rng, C.DOCUMENTS, len(live)), body)
            out = sc.outcomes(c, now, 0.93, 3 * MIN, pricing=1)
            for key in ("sent", "delivered", "read"):
                out[key] = np.where(fails, NEVER, out[key])
            out["failed"] = np.where(fails, now + S, NEVER)
            out["error"] = np.where(fails, 131047, 0).astype(np.int32)
            keep = now <= np.minimum(NOW_US, sc.gone[c])
            sc.add_messages(c[keep], now[keep], 1, kind[keep], body[keep].tolist(),
                            media=np.where(doc, 2, -1)[keep],
                            **{key: (v[keep] if isinstance(v, np.ndarray) else v) for key, v in out.items()})
        t[live] = now
