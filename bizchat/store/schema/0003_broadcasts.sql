-- bizchat schema, migration 0003: broadcasts (issue 5) — sending limits per account, the
-- composed template and fallbacks per broadcast, the frozen message per recipient, and the
-- sender's own trail. Only adds columns (with defaults) and one table; nothing is dropped.

-- Per-account sending limits. messaging_tier is the platform's messaging limit in unique
-- users per rolling 24 h (250, 2000, 10000, 100000; NULL = unlimited); send_rate the
-- throughput per number in messages per second. The marketing frequency cap allows at most
-- marketing_cap_count marketing messages per contact per marketing_cap_days days. Quiet
-- hours are wall-clock times in the recipient's time zone (contacts.timezone, else
-- accounts.timezone); a window whose start is after its end spans midnight. Equal start
-- and end (or NULL) means no quiet hours.
ALTER TABLE accounts ADD COLUMN messaging_tier INTEGER;
ALTER TABLE accounts ADD COLUMN send_rate INTEGER NOT NULL DEFAULT 80;
ALTER TABLE accounts ADD COLUMN marketing_cap_count INTEGER NOT NULL DEFAULT 2;
ALTER TABLE accounts ADD COLUMN marketing_cap_days INTEGER NOT NULL DEFAULT 7;
ALTER TABLE accounts ADD COLUMN quiet_hours_start TIME DEFAULT '21:00';
ALTER TABLE accounts ADD COLUMN quiet_hours_end TIME DEFAULT '08:00';

-- The template of variant A (templates.template_id; broadcasts.template keeps its name),
-- what to do with a recipient who lacks a placeholder value ('skip' them with reason
-- missing_placeholder, or use the 'fallback' texts in `fallbacks`, {"first_name": "..."}),
-- and the template language.
ALTER TABLE broadcasts ADD COLUMN template_id INTEGER;
ALTER TABLE broadcasts ADD COLUMN missing_placeholder VARCHAR NOT NULL DEFAULT 'skip';
ALTER TABLE broadcasts ADD COLUMN fallbacks JSON;
ALTER TABLE broadcasts ADD COLUMN language VARCHAR;

-- Frozen at scheduling so what the preview shows is what is sent: the rendered text
-- (body), the named placeholder values for a Cloud API template send (params) and the
-- address (wa_id). attempts counts transport calls; sent_at is when the platform accepted
-- the message. skip_reason may now also be 'cancelled' (queued when the broadcast was
-- cancelled).
ALTER TABLE broadcast_recipients ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE broadcast_recipients ADD COLUMN sent_at TIMESTAMPTZ;
ALTER TABLE broadcast_recipients ADD COLUMN body VARCHAR;
ALTER TABLE broadcast_recipients ADD COLUMN params JSON;
ALTER TABLE broadcast_recipients ADD COLUMN wa_id VARCHAR;

-- The sender's own trail per recipient and attempt (sending, sent, failed, deferred,
-- unknown, resolved ...): append-only, no phone numbers.
CREATE TABLE outbox_log (
    broadcast_id     BIGINT NOT NULL,
    idempotency_key  VARCHAR,
    event            VARCHAR NOT NULL,
    "at"             TIMESTAMPTZ NOT NULL,
    detail           JSON
);
