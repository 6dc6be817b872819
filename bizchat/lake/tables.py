"""What the lake holds of each workspace table: columns, pseudonymous keys, partitions.

Every table is one ``SELECT`` over the workspace: the columns the metrics read, each
``contact_id`` replaced by ``contact_key`` (the workspace's HMAC pseudonym, joined from a
contact_id -> key map computed once per export), timestamps as naive UTC ``TIMESTAMP``.
Message ids are keyed hashes too (message_key). Never in the lake: phone numbers, names, wa_ids, user ids, contact attributes, consent
evidence, message details, raw payloads, idempotency keys, recipient ids; message bodies
only when the export asks for them (``bodies=True``).

``part`` is where a row goes: the month directory (``month=YYYY-MM``) of messages (month
of sending) and message events (month of the event); a file bucket inside the tenant
folder for the other tables (one bucket for small tables; by month for message status,
by broadcast range for recipients, so a late receipt rewrites one file, not all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def utc(column: str) -> str:
    """A TIMESTAMPTZ column as naive UTC TIMESTAMP (what DuckDB and Spark read alike)."""
    return f"timezone('UTC', t.{column})"


def message_key(column: str) -> str:
    """A message id as a keyed hash (32 hex digits): Cloud API ids are base64 of the
    recipient's wa_id, so the plain id would carry the phone number into the lake. Written
    as a marker that ``TableSpec.select`` expands (or, for fingerprints, leaves plain)."""
    return f"MESSAGE_KEY({column})"


# SHA-256 of a per-purpose salt (derived from the workspace secret by HMAC, registered as
# the one-row table _lake_salt, never in SQL text) and the id: one hash per id, about 3x
# cheaper than a full HMAC in SQL, and as unlinkable without the secret.
_MESSAGE_KEY = re.compile(r"MESSAGE_KEY\(([^()]+)\)")
_KEYED = r"left(sha256((SELECT salt FROM _lake_salt) || encode(\1)), 32)"


def month(expr: str) -> str:
    return f"strftime({expr}, '%Y-%m')"


@dataclass(frozen=True)
class TableSpec:
    """One lake table: output columns (name, SQL over alias ``t`` and key map ``k``),
    the partition expression, and whether it is a Hive month directory."""

    name: str
    columns: tuple[tuple[str, str], ...]
    part: str = "'all'"
    by_month: bool = False
    source: str = ""
    keyed: bool = True

    @property
    def partitioned_by(self) -> list[str]:
        return ["tenant", "month"] if self.by_month else ["tenant"]

    def select(self, *, bodies: bool = False, raw: bool = False, only_parts: bool = False) -> str:
        """The SELECT of the table's lake rows with their partition as ``_part``.

        ``raw``: the same rows before pseudonymisation (contact_id, plain message ids), for
        the fingerprints: cheaper, and equal whenever the keys are (the key's id is in the
        watermarks). ``only_parts``: only the rows of the partitions bound to its one ``?``
        (a list), filtered before the keys are computed."""
        cols = list(self.columns)
        if bodies and self.name == "messages":
            cols.insert(cols.index(("kind", "t.kind")) + 1, ("body", "t.body"))
        if raw:
            cols = [(n, "t.contact_id" if n == "contact_key" else _MESSAGE_KEY.sub(r"\1", sql))
                    for n, sql in cols]
        else:
            cols = [(n, _MESSAGE_KEY.sub(_KEYED, sql)) for n, sql in cols]
        exprs = ", ".join(f'{sql} AS "{name}"' for name, sql in cols)
        source = self.source or f"{self.name} AS t"
        if self.keyed and not raw:
            source += " LEFT JOIN _lake_keys AS k ON k.contact_id = t.contact_id"
        where = f" WHERE ({self.part}) IN (SELECT unnest(?))" if only_parts else ""
        return f"SELECT {exprs}, {self.part} AS _part FROM {source}{where}"


KEY = ("contact_key", "k.contact_key")

# The marketing consent now and the month of that opt-in: the contacts' pseudonymous rows.
_CONSENT = """(SELECT contact_id, action, recorded_at FROM consent_events WHERE purpose = 'marketing'
    QUALIFY row_number() OVER (PARTITION BY contact_id ORDER BY recorded_at DESC, event_id DESC) = 1)"""

# The A/B plan without texts: variant, template and share of each (bodies and fixed
# placeholder values of body variants stay in the workspace).
_VARIANTS = ("CAST(to_json(list_transform(json_extract(t.variants, '$[*]'), lambda v: "
             "json_object('variant', v->>'variant', 'template', v->>'template', "
             "'share', TRY_CAST(v->>'share' AS DOUBLE)))) AS VARCHAR)")

_OPT_IN_MONTH = ("CASE WHEN cc.action = 'opt_in' THEN "
                 + month("timezone('UTC', cc.recorded_at)") + " END")

SPECS: dict[str, TableSpec] = {s.name: s for s in (
    TableSpec("accounts", (("account_id", "t.account_id"), ("number_type", "t.number_type"),
                           ("region", "t.region"), ("category", "t.category"),
                           ("timezone", "t.timezone"),
                           ("messaging_tier", "t.messaging_tier"),
                           ("created_at", utc("created_at"))), keyed=False),
    TableSpec("contacts", (KEY, ("account_id", "t.account_id"), ("language", "t.language"),
                           ("timezone", "t.timezone"), ("marketing_consent", "cc.action"),
                           ("opt_in_month", _OPT_IN_MONTH)),
              source=f"contacts AS t LEFT JOIN {_CONSENT} AS cc ON cc.contact_id = t.contact_id"),
    TableSpec("consent_events", (("event_id", "t.event_id"), KEY, ("account_id", "t.account_id"),
                                 ("purpose", "t.purpose"), ("action", "t.action"),
                                 ("source", "t.source"), ("recorded_at", utc("recorded_at")))),
    TableSpec("chats", (("chat_id", "t.chat_id"), ("account_id", "t.account_id"), KEY,
                        ("started_at", utc("started_at")), ("last_inbound_at", utc("last_inbound_at")),
                        ("last_message_at", utc("last_message_at")), ("read_at", utc("read_at")))),
    TableSpec("messages", (("message_id", message_key("t.message_id")), ("chat_id", "t.chat_id"),
                           ("account_id", "t.account_id"), KEY, ("direction", "t.direction"),
                           ("kind", "t.kind"), ("media_mime", "t.media_mime"),
                           ("reply_to", message_key("t.reply_to")), ("template_name", "t.template_name"),
                           ("broadcast_id", "t.broadcast_id"), ("variant", "t.variant"),
                           ("automatic", "t.automatic"), ("source", "t.source"),
                           ("created_at", utc("created_at"))),
              part=month(utc("created_at")), by_month=True),
    TableSpec("message_events", (("message_id", message_key("t.message_id")), ("status", "t.status"),
                                 ("at", utc('"at"')), ("error_code", "t.error_code"),
                                 ("error_title", "t.error_title"),
                                 ("conversation_category", "t.conversation_category"),
                                 ("pricing_category", "t.pricing_category"),
                                 ("pricing_model", "t.pricing_model"), ("billable", "t.billable"),
                                 ("received_at", utc("received_at"))),
              part=month(utc('"at"')), by_month=True, keyed=False),
    TableSpec("message_status", (("message_id", message_key("t.message_id")), ("status", "t.status"),
                                 ("sent_at", utc("sent_at")), ("delivered_at", utc("delivered_at")),
                                 ("read_at", utc("read_at")), ("played_at", utc("played_at")),
                                 ("failed_at", utc("failed_at")), ("error_code", "t.error_code"),
                                 ("broadcast_id", "t.broadcast_id"), ("updated_at", utc("updated_at"))),
              # bucket by the first time a status arrived: stable while later receipts come
              part="'status-' || " + month("timezone('UTC', least(t.sent_at, t.delivered_at, "
                                           "t.read_at, t.played_at, t.failed_at, t.updated_at))"),
              keyed=False),
    TableSpec("labels", (("label_id", "t.label_id"), ("account_id", "t.account_id"),
                         ("name", "t.name"), ("color", "t.color"),
                         ("created_at", utc("created_at"))), keyed=False),
    TableSpec("contact_labels", (KEY, ("label_id", "t.label_id"),
                                 ("assigned_at", utc("assigned_at")))),
    TableSpec("broadcasts", (("broadcast_id", "t.broadcast_id"), ("account_id", "t.account_id"),
                             ("name", "t.name"), ("template", "t.template"),
                             ("template_id", "t.template_id"), ("category", "t.category"),
                             ("language", "t.language"), ("variants", _VARIANTS),
                             ("control_fraction", "t.control_fraction"), ("status", "t.status"),
                             ("scheduled_for", utc("scheduled_for")), ("created_at", utc("created_at")),
                             ("frozen_at", utc("frozen_at")), ("expires_at", utc("expires_at")),
                             ("finished_at", utc("finished_at"))), keyed=False),
    TableSpec("broadcast_recipients", (("broadcast_id", "t.broadcast_id"), KEY,
                                       ("variant", "t.variant"), ("state", "t.state"),
                                       ("skip_reason", "t.skip_reason"),
                                       ("message_id", message_key("t.message_id")),
                                       ("not_before", utc("not_before")),
                                       ("error_code", "t.error_code"), ("error_title", "t.error_title"),
                                       ("attempts", "t.attempts"), ("sent_at", utc("sent_at")),
                                       ("updated_at", utc("updated_at"))),
              # a file per 100 broadcasts: a send in progress rewrites only its range
              part="'broadcasts-' || lpad(CAST((t.broadcast_id // 100) * 100 AS VARCHAR), 8, '0')"),
)}

TABLES = tuple(SPECS)
