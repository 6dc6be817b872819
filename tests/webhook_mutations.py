"""Mutated Cloud API webhook bodies: what a buggy sender, a proxy or an attacker with the
app secret could post. Used by the hypothesis test (test_webhook_mutations.py) and, run as
a script, for a mutation run that prints how many bodies were stored, rejected, and how
many made a batch fail:

    .venv/bin/python tests/webhook_mutations.py [BODIES] [--batch 16]

A mutation takes a valid sample body (tests/fixtures/webhooks) and changes 1-4 places:
drops a key, puts null, a value of another type, a huge or negative number, Infinity,
a lone surrogate, a long or numeric string, deep nesting, or duplicates a list item or
a key. Every body is returned as the text the receiver would spool (valid JSON in UTF-8:
the receiver answers 400 to anything else).
"""

from __future__ import annotations

import copy
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhook_samples import PNID, SAMPLE_PNID, dumps, scenarios, status, text_message  # noqa: E402

T0 = 1_790_000_000

ODD_VALUES = [
    None, True, False, 0, -1, 491701234567, 2**31, 2**63, 10**20, -10**20, 1.5, -0.0,
    float("inf"), float("-inf"), float("nan"), "", " ", "100000000000000000000", "1e400",
    "-5", "abc", "\ud800", "x\udfffy", "\U0001F44D", "\x00", "a" * 5000, [], {}, [1, "a"],
    {"id": 1}, {"body": None}, ["\ud800"],
]


def bases() -> list[dict]:
    """The valid bodies mutations start from."""
    docs = [d for name in ("messages", "statuses", "current_shape", "preferences")
            for d in scenarios(name).values()]
    docs.append(json.loads(dumps(text_message("491701234567", "wamid.base", "Hallo", T0))))
    docs.append(json.loads(dumps(status("wamid.base", "read", T0))))
    return docs


def _paths(doc, prefix=()):
    """Every (container path, key) in ``doc``, depth first."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield prefix, key
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield prefix, index
            yield from _paths(value, (*prefix, index))


def _get(doc, path):
    for step in path:
        doc = doc[step]
    return doc


def _deep(value, depth: int, rng: random.Random):
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"n": value}
    return value


def mutate(doc: dict, rng: random.Random) -> str:
    """A mutated copy of ``doc`` as body text."""
    doc = json.loads(json.dumps(doc))
    duplicate_key = deep = None
    for _ in range(rng.randint(1, 4)):
        places = list(_paths(doc))
        if not places:
            break
        # Deeper places are where the parser's assumptions live: prefer them.
        path, key = max(rng.sample(places, min(3, len(places))), key=lambda p: len(p[0]))
        parent = _get(doc, path)
        what = rng.random()
        if what < 0.25 and isinstance(parent, dict):
            del parent[key]
        elif what < 0.75:
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))   # later steps may change it
        elif what < 0.85:
            deep = (path, key)                      # last, so no later walk goes down it
        elif what < 0.95 and isinstance(parent[key], list) and parent[key]:
            parent[key].append(json.loads(json.dumps(rng.choice(parent[key]))))
        elif isinstance(parent, dict):
            duplicate_key = (key, rng.choice(ODD_VALUES[:8]))
    if deep:
        path, key = deep
        try:
            parent = _get(doc, path)
            parent[key] = _deep(parent[key], rng.choice([2, 50, 400]), rng)
        except (KeyError, IndexError, TypeError):
            pass                                    # that place went away meanwhile
    text = json.dumps(doc, separators=(",", ":"))   # ASCII: surrogates become \ud800 escapes
    if duplicate_key:                               # a key twice in its object
        key, value = duplicate_key
        needle = json.dumps(key) + ":"
        at = text.find(needle)
        if at > 0:
            text = text[:at] + needle + json.dumps(value) + "," + text[at:]
    return text


def valid_body(n: int) -> str:
    """A plain inbound text that must always be stored (its own message id)."""
    return dumps(text_message("491709876543", f"wamid.valid.{n}", f"gültig {n}", T0 + n)).decode()


def _workspace(path):
    import bizchat

    ws = bizchat.open(path)
    ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID)
    for number, pnid in (("+49 30 901830", SAMPLE_PNID["messages"]),
                         ("+49 30 901831", SAMPLE_PNID["statuses"]),
                         ("+1 650 555 0144", SAMPLE_PNID["current_shape"])):
        ws.accounts.add(number, name=pnid, phone_number_id=pnid)
    return ws


def run(n_bodies: int, batch: int, seed: int = 0) -> dict:
    """Mutated bodies in batches of ``batch``, once through one plain transaction per
    batch (how often does a batch fail?) and once through ingest_isolated (what is kept?)."""
    import tempfile
    from datetime import UTC, datetime

    from bizchat.ingest.payloads import payload_id
    from bizchat.ingest.webhooks import ingest_bodies

    rng = random.Random(seed)
    docs = bases()
    now = datetime.now(UTC)
    texts = [mutate(rng.choice(docs), rng) for _ in range(n_bodies)]
    items = [(payload_id(t), now, t) for t in texts]
    batches = [items[i:i + batch] for i in range(0, len(items), batch)]
    figures = {"bodies": n_bodies, "distinct": len({i[0] for i in items}), "batches": len(batches)}
    with tempfile.TemporaryDirectory() as tmp:
        plain = _workspace(Path(tmp) / "plain.duckdb")
        failed, errors = 0, {}
        with plain.connect() as con:
            for part in batches:
                try:
                    con.execute("BEGIN TRANSACTION")
                    ingest_bodies(con, part)
                    con.execute("COMMIT")
                except Exception as exc:  # noqa: BLE001 - counting them is the point
                    con.execute("ROLLBACK")
                    failed += 1
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        figures["plain_batches_failed"] = failed
        figures["plain_errors"] = errors
        alone = _workspace(Path(tmp) / "alone.duckdb")
        failing = 0
        with alone.connect() as con:            # each body in a transaction of its own
            for one in items:
                try:
                    con.execute("BEGIN TRANSACTION")
                    ingest_bodies(con, [one])
                    con.execute("COMMIT")
                except Exception:  # noqa: BLE001 - counting them is the point
                    con.execute("ROLLBACK")
                    failing += 1
        figures["plain_bodies_failing_alone"] = failing
        import bizchat

        if not (Path(bizchat.__file__).parent / "batches.py").exists():
            return figures                       # a bizchat before per-body isolation
        import logging

        from bizchat.ingest.batches import ingest_isolated

        logging.getLogger("bizchat").setLevel(logging.ERROR)
        isolated = _workspace(Path(tmp) / "isolated.duckdb")
        splits = {"n": 0}

        class Count(logging.Handler):
            def emit(self, record):
                if "trying its halves apart" in record.getMessage():
                    splits["n"] += 1

        handler = Count(logging.WARNING)
        logging.getLogger("bizchat.webhook").addHandler(handler)
        try:
            with isolated.connect() as con:
                for number, part in enumerate(batches):
                    valid = valid_body(number)      # after the bad ones, in the same batch
                    ingest_isolated(con, [*part, (payload_id(valid), now, valid)])
        finally:
            logging.getLogger("bizchat.webhook").removeHandler(handler)
        states = dict(isolated.sql("SELECT state, count(*) AS n FROM raw_payloads "
                                   "WHERE body NOT LIKE '%wamid.valid.%' GROUP BY state").values.tolist())
        figures["stored"] = int(states.get("ingested", 0) + states.get("unknown_account", 0))
        figures["rejected"] = int(states.get("rejected", 0))
        figures["isolated_batches_split"] = splits["n"]
        figures["rejected_without_reason"] = int(isolated.sql(
            "SELECT count(*) AS n FROM raw_payloads WHERE state = 'rejected' "
            "AND coalesce(note, '') = ''")["n"][0])
        figures["valid_bodies_missing"] = len(batches) - int(isolated.sql(
            "SELECT count(*) AS n FROM messages WHERE message_id LIKE 'wamid.valid.%'")["n"][0])
    return figures


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5000
    size = int(sys.argv[sys.argv.index("--batch") + 1]) if "--batch" in sys.argv else 16
    print(json.dumps(run(n, size), indent=1))
