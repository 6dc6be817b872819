-- bizchat schema, migration 0009: report HTML, the scheduler's slots, report delivery.
--
-- report_runs gains the HTML rendering's path and, for scheduled runs, the schedule
-- entry and the slot (the cron time it ran for).
ALTER TABLE report_runs ADD COLUMN html_path VARCHAR;
ALTER TABLE report_runs ADD COLUMN schedule VARCHAR;
ALTER TABLE report_runs ADD COLUMN slot TIMESTAMPTZ;

-- One row per schedule entry and slot the scheduler has claimed: the claim and the
-- run happen once even when two `bizchat schedule run-due` overlap (the claim is an
-- insert in one write transaction; the key refuses the second). A claim still
-- 'running' long after it was made (a killed process) may be claimed again.
CREATE TABLE schedule_slots (
    entry             VARCHAR NOT NULL,      -- the schedule entry's name
    slot              TIMESTAMPTZ NOT NULL,  -- the cron time, UTC
    claimed_at        TIMESTAMPTZ NOT NULL,
    claimed_by        VARCHAR,               -- host:pid of the claiming process
    status            VARCHAR NOT NULL,      -- running, ok, failed, skipped (catch-up: latest only)
    run_id            BIGINT,                -- report_runs.run_id
    error             VARCHAR,               -- why the slot failed (secrets cut out)
    delivery          VARCHAR,               -- NULL (no mail), pending, sent, failed
    delivery_attempts INTEGER NOT NULL DEFAULT 0,
    delivery_error    VARCHAR,
    delivered_at      TIMESTAMPTZ,
    PRIMARY KEY (entry, slot)
);
