-- bizchat schema, migration 0004: data protection (issue 7) — tombstones of erased people,
-- retention policies, pseudonymous contact keys and the analyst views keyed by them. Only
-- adds tables and views; nothing is dropped.

-- One row per erased identifier (E.164 number, wa_id, user_id) and account: a keyed hash,
-- never the identifier itself, so a re-import of an old CSV file can be recognised and
-- held back unless it carries consent given after the erasure. key_id names the
-- pseudonymisation key that made the hash (pseudonym.key_id), not the key.
CREATE TABLE privacy_tombstones (
    account_id    INTEGER NOT NULL,
    subject_hash  VARCHAR NOT NULL,          -- hex HMAC-SHA256 of 'erased:<account_id>:<identifier>'
    key_id        VARCHAR NOT NULL,
    erased_at     TIMESTAMPTZ NOT NULL,
    reason        VARCHAR NOT NULL           -- request (Art. 17) or retention
);

-- How long data is kept, per account (account_id NULL: the default for every account
-- without its own row). days NULL means keep forever. Kinds: message_bodies (texts,
-- captions, frozen broadcast texts and raw webhook bodies older than this), raw_payloads
-- (raw webhook bodies older than this), inactive_contacts (contacts without an inbound
-- message or consent event for this long are erased). Without any row the built-in
-- defaults apply (see privacy/retention.py and docs/privacy.md).
CREATE TABLE retention_policies (
    account_id  INTEGER,
    kind        VARCHAR NOT NULL CHECK (kind IN ('message_bodies', 'raw_payloads', 'inactive_contacts')),
    days        INTEGER CHECK (days IS NULL OR days > 0),
    updated_at  TIMESTAMPTZ NOT NULL
);

-- The pseudonymous key of every contact (pseudonym.contact_key), kept current by
-- pseudonym.refresh (privacy commands, report runs). Computed with a key that is not in
-- this table; used by the analyst views below.
CREATE TABLE subject_keys (
    contact_id   BIGINT PRIMARY KEY,
    subject_key  VARCHAR NOT NULL
);

-- Contacts for analysts: a pseudonymous key instead of number, wa_id, user_id and name,
-- with the current consent per purpose. subject_key is NULL for a contact added since the
-- last refresh (bizchat privacy keys).
CREATE VIEW analyst_contacts AS
SELECT k.subject_key, c.account_id, c.language, c.timezone, c.created_at,
       m.state AS marketing_consent, m.source AS marketing_source,
       s.state AS service_consent
FROM contacts AS c
LEFT JOIN subject_keys AS k USING (contact_id)
LEFT JOIN current_consent AS m ON m.contact_id = c.contact_id AND m.purpose = 'marketing'
LEFT JOIN current_consent AS s ON s.contact_id = c.contact_id AND s.purpose = 'service';

-- Messages for analysts: no text, no message id (Cloud API ids encode the number), the
-- contact as its pseudonymous key, and the latest delivery status.
CREATE VIEW analyst_messages AS
SELECT k.subject_key, m.account_id, m.direction, m.kind, m.template_name, m.broadcast_id,
       m.variant, m.automatic, m.source, m.created_at,
       st.status, st.sent_at, st.delivered_at, st.read_at, st.failed_at, st.error_code
FROM messages AS m
LEFT JOIN subject_keys AS k USING (contact_id)
LEFT JOIN message_status AS st USING (message_id);
