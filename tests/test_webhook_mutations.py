"""Mutated Cloud API bodies (tests/webhook_mutations.py): every body is stored or rejected
with a reason, and a valid body after a bad one in the same batch is always stored.

Also: the batch as one transaction does not fail. Every field is typed before it is
used, so the parser rejects a bad body itself; splitting the batch (webhook_batches)
is the safety net for what nobody foresaw, not the way bad bodies are found."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webhook_mutations import _workspace, bases, mutate, valid_body

from bizchat.ingest.batches import ingest_isolated
from bizchat.ingest.payloads import payload_id
from bizchat.ingest.webhooks import ingest_bodies

BASES = bases()
NOW = datetime(2026, 11, 1, tzinfo=UTC)
_numbers = itertools.count()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return _workspace(tmp_path_factory.mktemp("mutations") / "ws.duckdb")


@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.tuples(st.sampled_from(range(len(BASES))), st.randoms(use_true_random=False)),
                      min_size=1, max_size=6))
def test_every_mutated_body_is_stored_or_rejected_and_the_valid_one_after_is_stored(workspace, picks):
    texts = [mutate(BASES[base], rng) for base, rng in picks]
    number = next(_numbers)
    valid = valid_body(number)
    items = [(payload_id(t), NOW, t) for t in [*texts, valid]]
    with workspace.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            ingest_bodies(con, items)
            whole = None
        except Exception as exc:  # noqa: BLE001 - asserted below, after the rest
            whole = exc
        con.execute("ROLLBACK")
        report = ingest_isolated(con, items)        # raises only for transient errors
        rows = dict(con.execute(
            "SELECT payload_id, state || ':' || coalesce(note, '') FROM raw_payloads "
            "WHERE payload_id IN (SELECT unnest(?))", [[i[0] for i in items]]).fetchall())
        stored_valid = con.execute("SELECT count(*) FROM messages WHERE message_id = ?",
                                   [f"wamid.valid.{number}"]).fetchall()[0][0]
    assert set(rows) == {i[0] for i in items}, "a body was neither stored nor rejected"
    for pid, state in rows.items():
        kind, _, note = state.partition(":")
        assert kind in ("ingested", "unknown_account", "rejected")
        if kind == "rejected":
            assert note.strip(), f"body {pid[:12]} rejected without a reason"
            assert pid in report.rejected or report.duplicates
    assert rows[payload_id(valid)] == "ingested:" and stored_valid == 1
    assert whole is None, f"the batch failed as a whole: {type(whole).__name__}: {whole}"
