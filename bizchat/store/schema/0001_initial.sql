-- bizchat schema, migration 0001: the documented tables (see docs/schema.md).
--
-- This file is frozen once released: later changes are new numbered migrations that only
-- add. Conventions: timestamps are UTC TIMESTAMPTZ; phone numbers are E.164 strings;
-- ids are integers the application allocates (bulk loads supply them in Arrow batches).
-- Big tables (messages, message_events) carry no primary key on purpose: a key makes
-- bulk loads 9-15x slower, and ingestion dedupes with an anti-join instead.

CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL
);

-- Workspace-wide settings (key/value), e.g. the pseudonymisation key when it is not in
-- the environment.
CREATE TABLE settings (
    key    VARCHAR PRIMARY KEY,
    value  VARCHAR NOT NULL
);

-- One row per WhatsApp Business number of the business. Several accounts share a
-- workspace but never each other's contacts, labels, chats or statistics.
CREATE TABLE accounts (
    account_id        INTEGER PRIMARY KEY,
    phone_e164        VARCHAR NOT NULL UNIQUE,
    number_type       VARCHAR NOT NULL,      -- mobile, fixed_line, fixed_line_or_mobile (unknown), voip, toll_free, ...
    region            VARCHAR,               -- ISO 3166-1 alpha-2 of the number, e.g. DE
    display_name      VARCHAR NOT NULL,
    phone_number_id   VARCHAR UNIQUE,        -- Cloud API id of the number (metadata.phone_number_id)
    waba_id           VARCHAR,               -- WhatsApp Business Account id
    about             VARCHAR,
    description       VARCHAR,
    category          VARCHAR,
    address           VARCHAR,
    email             VARCHAR,
    websites          VARCHAR[],
    business_hours    JSON,                  -- {"mon": [["09:00","18:00"]], ..., "sun": []} in `timezone`
    timezone          VARCHAR NOT NULL DEFAULT 'Europe/Berlin',
    opt_out_keywords  VARCHAR[],             -- NULL: the default list (STOP, STOPP, ABMELDEN, ...)
    max_labels        INTEGER NOT NULL DEFAULT 20,
    max_quick_replies INTEGER NOT NULL DEFAULT 50,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Customers of one account. phone_e164 may be missing: newer webhook payloads can
-- withhold the number of users who chose a username; user_id (the business-scoped user
-- id) identifies them then.
CREATE TABLE contacts (
    contact_id   BIGINT PRIMARY KEY,
    account_id   INTEGER NOT NULL,
    phone_e164   VARCHAR,
    wa_id        VARCHAR,
    user_id      VARCHAR,
    name         VARCHAR,
    language     VARCHAR,                    -- BCP 47, e.g. de, de-AT, en
    timezone     VARCHAR,                    -- IANA zone; NULL means the account's
    attributes   JSON,                       -- free attributes, e.g. {"city": "Graz"}
    created_at   TIMESTAMPTZ NOT NULL
);

-- The consent ledger: append-only. The current state per contact and purpose is the
-- latest event (view current_consent); nothing here is ever updated.
CREATE TABLE consent_events (
    event_id     BIGINT NOT NULL,            -- increasing; breaks ties between equal times
    contact_id   BIGINT NOT NULL,
    account_id   INTEGER NOT NULL,
    purpose      VARCHAR NOT NULL CHECK (purpose IN ('marketing', 'service')),
    action       VARCHAR NOT NULL CHECK (action IN ('opt_in', 'opt_out')),
    source       VARCHAR NOT NULL,           -- double_opt_in_form, in_store, chat, import, keyword, user_preferences, ...
    evidence     VARCHAR,                    -- e.g. the confirmation text and time, the keyword message id
    recorded_at  TIMESTAMPTZ NOT NULL
);

-- One conversation per account and contact.
CREATE TABLE chats (
    chat_id          BIGINT PRIMARY KEY,
    account_id       INTEGER NOT NULL,
    contact_id       BIGINT NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    last_inbound_at  TIMESTAMPTZ,            -- opens the 24-hour customer-service window
    last_message_at  TIMESTAMPTZ
);

-- Every message in and out. message_id is the Cloud API wamid where there is one,
-- otherwise a bizchat id (exports, simulated sends).
CREATE TABLE messages (
    message_id     VARCHAR NOT NULL,
    chat_id        BIGINT,
    account_id     INTEGER NOT NULL,
    contact_id     BIGINT,
    direction      VARCHAR NOT NULL CHECK (direction IN ('in', 'out')),
    kind           VARCHAR NOT NULL,         -- text, image, audio, video, document, sticker, location, contacts, interactive, button, reaction, template, system, deleted, unsupported, ...
    body           VARCHAR,                  -- text, caption, or a readable summary of the content
    media_mime     VARCHAR,
    reply_to       VARCHAR,                  -- message_id this one answers or reacts to
    template_name  VARCHAR,
    broadcast_id   BIGINT,
    variant        VARCHAR,
    automatic      BOOLEAN NOT NULL DEFAULT false,   -- sent by a greeting/away rule
    source         VARCHAR NOT NULL,         -- webhook, export, transport, automation, demo
    details        JSON,                     -- type-specific content (location, contacts, interactive ids)
    created_at     TIMESTAMPTZ NOT NULL
);

-- Status receipts, as they arrived: at most one row per message and status.
CREATE TABLE message_events (
    message_id         VARCHAR NOT NULL,
    status             VARCHAR NOT NULL CHECK (status IN ('sent', 'delivered', 'read', 'played', 'failed')),
    "at"               TIMESTAMPTZ NOT NULL,   -- quote it: AT is a keyword in DuckDB
    recipient_id       VARCHAR,              -- wa_id or user id the status is about
    error_code         INTEGER,              -- first error of errors[] for failed
    error_title        VARCHAR,
    errors             JSON,                 -- the whole errors[] array
    conversation_id    VARCHAR,
    conversation_category VARCHAR,
    pricing_category   VARCHAR,              -- marketing, utility, service, authentication ...
    pricing_model      VARCHAR,              -- CBP, PMP
    billable           BOOLEAN,
    callback_data      VARCHAR,              -- biz_opaque_callback_data: the outbox idempotency key
    received_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The latest status per message, kept current by ingestion. Each *_at column is the
-- first time that status arrived, as received; status is derived from them (monotonic:
-- read > delivered > sent; failed is final), whatever order events came in. It equals
-- what message_events implies (view latest_status) and saves re-deriving it per query.
-- A read implies delivered: analytics use coalesce(delivered_at, read_at).
CREATE TABLE message_status (
    message_id    VARCHAR NOT NULL,          -- one row per message (kept so by ingestion; no key, for bulk speed)
    status        VARCHAR NOT NULL,
    sent_at       TIMESTAMPTZ,
    delivered_at  TIMESTAMPTZ,
    read_at       TIMESTAMPTZ,
    played_at     TIMESTAMPTZ,               -- voice messages: played implies read
    failed_at     TIMESTAMPTZ,
    error_code    INTEGER,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Webhook bodies exactly as received; the platform cannot send one again.
CREATE TABLE raw_payloads (
    payload_id   VARCHAR NOT NULL,           -- sha256 of the body: the same body twice is one row
    received_at  TIMESTAMPTZ NOT NULL,
    account_id   INTEGER,                    -- NULL when no account matched (kept for review)
    state        VARCHAR NOT NULL,           -- ingested, unknown_account, rejected
    note         VARCHAR,
    body         VARCHAR NOT NULL
);

CREATE TABLE labels (
    label_id    INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL,
    name        VARCHAR NOT NULL,            -- unique per account, case-insensitively
    color       INTEGER NOT NULL CHECK (color BETWEEN 1 AND 20),   -- WhatsApp's palette of 20
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE contact_labels (
    contact_id   BIGINT NOT NULL,
    label_id     INTEGER NOT NULL,
    assigned_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, label_id)
);

CREATE TABLE chat_labels (
    chat_id      BIGINT NOT NULL,
    label_id     INTEGER NOT NULL,
    assigned_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, label_id)
);

CREATE TABLE quick_replies (
    account_id  INTEGER NOT NULL,
    shortcut    VARCHAR NOT NULL,            -- e.g. /danke
    text        VARCHAR NOT NULL,            -- named placeholders only: {first_name}
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, shortcut)
);

-- Greeting and away messages.
CREATE TABLE automations (
    automation_id  INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL,
    kind           VARCHAR NOT NULL CHECK (kind IN ('greeting', 'away')),
    text           VARCHAR NOT NULL,
    schedule       VARCHAR NOT NULL DEFAULT 'always',  -- always, outside_hours, custom
    schedule_spec  JSON,                     -- custom: {"mon": [["18:00","23:59"]], ...}
    scope          VARCHAR NOT NULL DEFAULT 'everyone',  -- everyone, unknown_contacts, only_labels, except_labels
    scope_labels   VARCHAR[],
    silence_days   INTEGER NOT NULL DEFAULT 14,  -- greeting: first message after this much silence
    enabled        BOOLEAN NOT NULL DEFAULT true,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Message templates (as registered with WhatsApp): body with named placeholders.
CREATE TABLE templates (
    template_id  INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL,
    name         VARCHAR NOT NULL,
    language     VARCHAR NOT NULL DEFAULT 'de',
    category     VARCHAR NOT NULL CHECK (category IN ('marketing', 'utility', 'authentication')),
    header       VARCHAR,
    body         VARCHAR NOT NULL,
    footer       VARCHAR,
    buttons      JSON,                       -- [{"type": "quick_reply", "text": ...}, {"type": "url", ...}]
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE broadcasts (
    broadcast_id     BIGINT PRIMARY KEY,
    account_id       INTEGER NOT NULL,
    name             VARCHAR NOT NULL,
    template         VARCHAR,                -- template name (variant A)
    category         VARCHAR NOT NULL CHECK (category IN ('marketing', 'utility')),
    audience         JSON,                   -- the audience definition as composed
    variants         JSON,                   -- [{"variant": "A", "template": ..., "share": ...}]
    control_fraction DOUBLE NOT NULL DEFAULT 0,
    seed             BIGINT,
    status           VARCHAR NOT NULL,       -- draft, scheduled, sending, done, cancelled
    scheduled_for    TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ
);

-- The frozen audience of a broadcast and each recipient's send state.
CREATE TABLE broadcast_recipients (
    broadcast_id     BIGINT NOT NULL,
    contact_id       BIGINT NOT NULL,
    variant          VARCHAR,                -- A, B, ...; 'control' for the hold-out group
    state            VARCHAR NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'unknown', 'failed', 'skipped')),
    skip_reason      VARCHAR,                -- no_consent, opted_out, frequency_cap, quiet_hours, invalid_number, missing_placeholder, control
    idempotency_key  VARCHAR NOT NULL,       -- travels as biz_opaque_callback_data
    message_id       VARCHAR,                -- the provider's message id once sent
    not_before       TIMESTAMPTZ,            -- deferred (e.g. 131049) until then
    error_code       INTEGER,
    error_title      VARCHAR,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- Scheduled and manual report runs (papermill).
CREATE TABLE report_runs (
    run_id       BIGINT PRIMARY KEY,
    report       VARCHAR NOT NULL,
    params       JSON,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       VARCHAR NOT NULL,           -- running, ok, failed
    output_path  VARCHAR,
    error        VARCHAR
);

-- Append-only record of what was done to whom (exports, erasures, consent changes,
-- imports, sends). subject_key is the pseudonymous contact key, never a number.
CREATE TABLE audit_log (
    "at"         TIMESTAMPTZ NOT NULL,
    actor        VARCHAR NOT NULL,
    action       VARCHAR NOT NULL,
    subject_key  VARCHAR,
    details      JSON
);
