"""Erasure and retention reach the lake: after `bizchat privacy erase`, the person's key is
in no byte of the lake folder (files, manifest, staging, decoded values) once the next
export or `bizchat lake erase-pending` ran; everyone else's rows are intact."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from click.testing import CliRunner
from lake_helpers import all_text, lake_table

from bizchat.cli import main
from bizchat.lake import read_manifest
from bizchat.people import pseudonym


def _subject(ws) -> dict:
    """A contact with inbound messages and broadcast recipients: their key is everywhere."""
    row = ws.sql("""SELECT c.contact_id, c.phone_e164, c.name FROM contacts c
                    WHERE EXISTS (SELECT 1 FROM broadcast_recipients r WHERE r.contact_id = c.contact_id
                                  AND r.message_id IS NOT NULL)
                      AND EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.contact_id
                                  AND m.direction = 'in')
                    ORDER BY c.contact_id LIMIT 1""").iloc[0]
    key = pseudonym.contact_key(pseudonym.secret_for(ws), int(row.contact_id))
    return {"id": int(row.contact_id), "phone": row.phone_e164, "name": row.name, "key": key}


@pytest.fixture
def erased(demo_ws, tmp_path):
    """(ws, lake, subject): the lake exported with bodies, then the subject erased."""
    lake = tmp_path / "lake"
    demo_ws.lake.export(lake, bodies=True)
    subject = _subject(demo_ws)
    assert subject["key"].encode() in all_text(lake)        # the scan can find it
    demo_ws.privacy.erase(subject["phone"], compact=False)
    return demo_ws, lake, subject


def _others(lake, table, key):
    frame = lake_table(lake, "demo", table)
    return frame[frame["contact_key"] != key].reset_index(drop=True)


@pytest.mark.slow
def test_the_next_export_removes_the_erased_key_from_every_byte(erased):
    ws, lake, subject = erased
    contacts_before = _others(lake, "contacts", subject["key"])
    messages_before = len(lake_table(lake, "demo", "messages"))
    result = ws.lake.export(lake, bodies=True)
    assert result.published
    text = all_text(lake)
    assert subject["key"].encode() not in text
    assert subject["phone"].encode() not in text and subject["phone"][1:].encode() not in text
    # the others are as they were; the person's messages stay, anonymous, for the statistics
    pd.testing.assert_frame_equal(lake_table(lake, "demo", "contacts"), contacts_before)
    assert len(lake_table(lake, "demo", "messages")) == messages_before
    assert ws.lake.verify(lake).ok


@pytest.mark.slow
def test_erase_pending_rewrites_the_files_from_the_lake_alone(erased, tmp_path):
    ws, lake, subject = erased
    keyed = {t: _others(lake, t, subject["key"]) for t in ("contacts", "messages", "chats",
                                                           "broadcast_recipients", "contact_labels")}
    theirs = lake_table(lake, "demo", "messages")
    their_ids = set(theirs.loc[theirs["contact_key"] == subject["key"], "message_id"])
    status_before = lake_table(lake, "demo", "message_status")
    files_before = {e.path for e in read_manifest(lake).all_entries()}
    result = CliRunner().invoke(main, ["-w", str(ws.path), "lake", "erase-pending", str(lake)])
    assert result.exit_code == 0, result.output
    assert "file(s) rewritten" in result.output
    assert subject["key"].encode() not in all_text(lake)
    for table, frame in keyed.items():
        pd.testing.assert_frame_equal(lake_table(lake, "demo", table), frame, obj=table)
    # the person's receipts (keyed by message) went with their messages; others stayed
    status = lake_table(lake, "demo", "message_status")
    assert not set(status["message_id"]) & their_ids
    kept = status_before[~status_before["message_id"].isin(their_ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(status, kept)
    assert ws.lake.verify(lake).ok
    # only the files that held the person were replaced
    files_after = {e.path for e in read_manifest(lake).all_entries()}
    replaced = {p.split("/")[0] for p in files_before - files_after}
    assert 0 < len(files_before - files_after) < len(files_before)
    assert not replaced & {"accounts", "labels", "broadcasts"}
    # running it again finds nothing to do; the next export makes the lake whole again
    again = ws.lake.erase_pending(lake)
    assert again["files"] == 0
    ws.lake.export(lake, bodies=True)
    fresh = tmp_path / "fresh"
    ws.lake.export(fresh, bodies=True)
    for table in ("messages", "message_status", "contacts"):
        pd.testing.assert_frame_equal(lake_table(lake, "demo", table), lake_table(fresh, "demo", table))


@pytest.mark.slow
def test_a_retention_purge_reaches_the_lake_at_the_next_export(demo_ws, tmp_path):
    lake = tmp_path / "lake"
    demo_ws.lake.export(lake, bodies=True)
    old = lake_table(lake, "demo", "messages")
    cutoff = pd.Timestamp.now("UTC").tz_localize(None) - pd.Timedelta(days=365)
    assert old.loc[old["created_at"] < cutoff, "body"].notna().sum() > 0
    demo_ws.privacy.purge(compact=False)
    result = demo_ws.lake.export(lake, bodies=True)
    assert result.tables["messages"]["written"] > 0
    new = lake_table(lake, "demo", "messages")
    assert new.loc[new["created_at"] < cutoff - pd.Timedelta(days=1), "body"].notna().sum() == 0
    assert len(new) == len(old)          # the rows stay for the statistics; only texts went
    shutil.rmtree(lake / "_staging", ignore_errors=True)
