"""Erasure in the webhook spool: ingested lines dropped, pending lines rewritten, offsets safe."""

from __future__ import annotations

import hashlib
import json

from privacy_fill import envelope

from bizchat.ingest.spool import Spool
from bizchat.privacy.payloads import Redaction
from bizchat.privacy.spool_redact import redact_spool
from bizchat.privacy.subjects import Identifiers

WA = "491701234567"


def _body(sender: str, text: str, mid: str) -> bytes:
    return envelope("555", "4930901820", {
        "contacts": [{"profile": {"name": "Rita Ruf" if sender == WA else "Otto"}, "wa_id": sender}],
        "messages": [{"from": sender, "id": mid, "timestamp": "1767250000", "type": "text",
                      "text": {"body": text}}]})


def _redaction() -> Redaction:
    ids = Identifiers(phones={"+" + WA}, ids={WA}, names={"Rita Ruf"})
    return Redaction(ids={WA}, pattern=ids.pattern())


def test_ingested_lines_go_pending_lines_are_redacted_and_the_offset_is_reset(tmp_path):
    path = tmp_path / "ws.duckdb"
    spool = Spool(path)
    spool.append([Spool.record(_body(WA, "schon drin", "m1")), Spool.record(_body("491709999999", "auch", "m2"))])
    spool.commit(spool.read())                      # all ingested: emptied
    spool.append([Spool.record(_body(WA, "ingestiert", "m3"))])
    first = spool.read()
    ingested = first.end - first.start
    spool.append([Spool.record(_body(WA, "Ruf mich an: 0170 1234567", "m4")),
                  Spool.record(_body("491709999999", "Rita Ruf kommt auch", "m5"))])
    spool.commit(first)                             # m3 in DuckDB, m4 and m5 pending
    with open(spool.path, "ab") as f:
        f.write(b'{"id": "torn", "body": "{\\"obj')   # a crash mid-append: never acknowledged
    counts = redact_spool(path, _redaction())
    assert counts == {"pending_lines": 2, "changed_lines": 2, "dropped_ingested_bytes": ingested}
    batch = Spool(path).read()                      # a new file: read from the top
    records = batch.records
    assert batch.end == spool.size() and batch.start == spool.head()[1]
    raw = spool.path.read_bytes()
    assert WA.encode() not in raw and b"Rita Ruf" not in raw and b"1234567" not in raw
    assert b"ingestiert" not in raw and b"torn" not in raw
    bodies = [json.loads(body) for _, _, body in records]
    texts = [m["text"]["body"] for b in bodies for e in b["entry"] for c in e["changes"]
             for m in c["value"].get("messages", [])]
    assert texts == ["[erased] kommt auch"]        # Rita's own line lost her message entirely
    for pid, _, body in records:
        assert pid == hashlib.sha256(body.encode()).hexdigest()


def test_a_spool_without_the_person_is_left_alone(tmp_path):
    path = tmp_path / "ws.duckdb"
    spool = Spool(path)
    spool.append([Spool.record(_body("491709999999", "Hallo", "m1"))])
    before = spool.path.read_bytes()
    inode = spool.path.stat().st_ino
    assert redact_spool(path, _redaction())["changed_lines"] == 0
    assert spool.path.read_bytes() == before and spool.path.stat().st_ino == inode


def test_no_spool_no_work(tmp_path):
    assert redact_spool(tmp_path / "ws.duckdb", _redaction())["pending_lines"] == 0
