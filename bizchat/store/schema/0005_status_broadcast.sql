-- bizchat schema, migration 0005: message_status carries the broadcast of the message.
--
-- The campaign open-rate table is read far more often than receipts are written. Joining
-- every recipient to its status on the text message id costs seconds at ten million
-- messages; with the broadcast on the status row the table is two GROUP BYs on an integer.
-- broadcast_id is set when the message is some recipient's current message (its
-- broadcast_recipients.message_id), and cleared when a deferral (131049) replaces the
-- message by a new attempt, so each recipient is counted once. Only adds a column.
ALTER TABLE message_status ADD COLUMN broadcast_id BIGINT;

UPDATE message_status SET broadcast_id = r.broadcast_id
FROM broadcast_recipients AS r
WHERE r.message_id = message_status.message_id;

-- campaign_stats from the same per-broadcast totals as Stats.open_rates: failed counts
-- messages the platform reported failed plus sends that failed before it accepted one.
CREATE OR REPLACE VIEW campaign_stats AS
WITH people AS (
    SELECT broadcast_id, count(*) AS recipients,
           count(*) FILTER (WHERE state = 'skipped') AS skipped,
           count(message_id) AS sent,
           count(*) FILTER (WHERE state = 'failed' AND message_id IS NULL) AS failed_unsent
    FROM broadcast_recipients GROUP BY broadcast_id
), msgs AS (
    SELECT broadcast_id,
           count(*) FILTER (WHERE failed_at IS NULL
                            AND coalesce(delivered_at, read_at, played_at) IS NOT NULL) AS delivered,
           count(*) FILTER (WHERE failed_at IS NULL
                            AND coalesce(read_at, played_at) IS NOT NULL) AS "read",
           count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed
    FROM message_status WHERE broadcast_id IS NOT NULL GROUP BY broadcast_id
)
SELECT
    b.broadcast_id, b.account_id, b.name, b.category, b.template, b.status,
    b.scheduled_for,
    coalesce(p.recipients, 0) AS recipients,
    coalesce(p.skipped, 0) AS skipped,
    coalesce(p.sent, 0) AS sent,
    coalesce(m.delivered, 0) AS delivered,
    coalesce(m."read", 0) AS "read",
    coalesce(m.failed, 0) + coalesce(p.failed_unsent, 0) AS failed,
    coalesce(m.delivered, 0) / nullif(p.sent, 0) AS delivery_rate,
    m."read" / nullif(m.delivered, 0) AS open_rate
FROM broadcasts AS b
LEFT JOIN people AS p USING (broadcast_id)
LEFT JOIN msgs AS m USING (broadcast_id);
