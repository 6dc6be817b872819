-- bizchat schema, migration 0002: derived views for analysts (see docs/schema.md).

-- The current consent per contact and purpose: the latest ledger event wins; event_id
-- breaks ties between events recorded at the same instant.
CREATE VIEW current_consent AS
SELECT contact_id, account_id, purpose, action AS state, source, evidence, recorded_at
FROM consent_events
QUALIFY row_number() OVER (
    PARTITION BY contact_id, purpose ORDER BY recorded_at DESC, event_id DESC) = 1;

-- The latest status per message derived from all receipts. Statuses are monotonic
-- (read > delivered > sent) and failed is final, whatever order the events came in; a
-- read implies delivered. message_status holds the same, kept current by ingestion.
CREATE VIEW latest_status AS
SELECT
    message_id,
    CASE
        WHEN bool_or(status = 'failed') THEN 'failed'
        WHEN bool_or(status IN ('read', 'played')) THEN 'read'
        WHEN bool_or(status = 'delivered') THEN 'delivered'
        ELSE 'sent'
    END AS status,
    min("at") FILTER (WHERE status = 'sent') AS sent_at,
    coalesce(min("at") FILTER (WHERE status = 'delivered'),
             min("at") FILTER (WHERE status IN ('read', 'played'))) AS delivered_at,
    min("at") FILTER (WHERE status IN ('read', 'played')) AS read_at,
    min("at") FILTER (WHERE status = 'failed') AS failed_at,
    arg_min(error_code, "at") FILTER (WHERE status = 'failed') AS error_code
FROM message_events
GROUP BY message_id;

-- Per broadcast: the audience and how far its messages got. sent counts recipients whose
-- message the platform accepted; rates follow DESIGN.md (open rate = read / delivered,
-- a lower bound because users can switch read receipts off).
CREATE VIEW campaign_stats AS
WITH r AS (
    SELECT
        r.broadcast_id,
        count(*) AS recipients,
        count(*) FILTER (WHERE r.state = 'skipped') AS skipped,
        count(r.message_id) AS sent,
        count(coalesce(s.delivered_at, s.read_at, s.played_at))
            FILTER (WHERE s.status <> 'failed') AS delivered,
        count(coalesce(s.read_at, s.played_at)) FILTER (WHERE s.status <> 'failed') AS "read",
        count(*) FILTER (WHERE s.status = 'failed' OR r.state = 'failed') AS failed
    FROM broadcast_recipients AS r
    LEFT JOIN message_status AS s USING (message_id)
    GROUP BY r.broadcast_id
)
SELECT
    b.broadcast_id, b.account_id, b.name, b.category, b.template, b.status,
    b.scheduled_for,
    coalesce(r.recipients, 0) AS recipients,
    coalesce(r.skipped, 0) AS skipped,
    coalesce(r.sent, 0) AS sent,
    coalesce(r.delivered, 0) AS delivered,
    coalesce(r."read", 0) AS "read",
    coalesce(r.failed, 0) AS failed,
    r.delivered / nullif(r.sent, 0) AS delivery_rate,
    r."read" / nullif(r.delivered, 0) AS open_rate
FROM broadcasts AS b
LEFT JOIN r USING (broadcast_id);
