"""The hand-built stats world (stats_world.py) is what its docstring says."""

from __future__ import annotations

import pytest
from stats_world import build_campaigns


@pytest.fixture
def campaigns(ws):
    build_campaigns(ws)
    return ws


# --- the world is what the docstring says ---------------------------------------------------

def test_world_receipts_are_deduplicated_by_ingestion(campaigns):
    events = campaigns.sql("SELECT status, count(*) AS n FROM message_events "
                           "WHERE message_id = 'm1-105' GROUP BY status ORDER BY status")
    assert events.to_dict("list") == {"status": ["delivered", "read", "sent"], "n": [1, 1, 1]}
    status = campaigns.sql("SELECT status, delivered_at IS NULL AS no_delivery FROM message_status "
                           "WHERE message_id IN ('m1-103', 'm1-104', 'm1-107') ORDER BY message_id")
    assert status["status"].tolist() == ["read", "failed", "sent"]
    assert status["no_delivery"].tolist() == [True, True, True]
