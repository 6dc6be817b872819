-- bizchat schema, migration 0007: campaign correctness (issue 16) — time rules decided at
-- hand-off, broadcasts that go out when due, one sender per broadcast. Only adds columns.

-- What the outbox does with a recipient inside their quiet hours at hand-off time:
-- 'defer' (stay queued with not_before = the end of the quiet hours) or 'skip' (skipped,
-- reason quiet_hours). expires_at: deferred recipients not sent by then are skipped with
-- reason 'expired'. frozen_at: when the recipients were frozen (NULL while a scheduled
-- broadcast waits for its time: a draft is frozen at its send time, not before).
-- status may now also be 'paused' (scheduled or sending, held by an operator).
ALTER TABLE broadcasts ADD COLUMN outside_hours VARCHAR NOT NULL DEFAULT 'defer';
ALTER TABLE broadcasts ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE broadcasts ADD COLUMN frozen_at TIMESTAMPTZ;

-- The sender's lease: the process (host:pid) sending the broadcast and until when its
-- claim holds (wall clock), so two `run-due` processes never work one queue at once and
-- `resume` never declares a live sender's messages unknown.
ALTER TABLE broadcasts ADD COLUMN sender VARCHAR;
ALTER TABLE broadcasts ADD COLUMN sender_until TIMESTAMPTZ;

-- Broadcasts frozen before this migration were frozen when scheduled.
UPDATE broadcasts SET frozen_at = coalesce(scheduled_for, created_at)
WHERE status <> 'draft' AND EXISTS (SELECT 1 FROM broadcast_recipients r
                                    WHERE r.broadcast_id = broadcasts.broadcast_id);
