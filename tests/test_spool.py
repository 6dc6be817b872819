"""The spool's line format: bodies come back byte for byte, old spools stay readable."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bizchat.ingest.spool import Spool, decode_line, encode_line

AT = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
COMPACT = '{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"text":"Grüße \\"Anna\\" 📚"}}]}]}'
PRETTY = '{\r\n  "object": "whatsapp_business_account",\n  "entry": []\n}'


def test_a_compact_body_is_stored_as_itself_and_the_line_is_json():
    line = Spool.record(COMPACT.encode(), AT)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert COMPACT.encode() in line                     # not escaped into a string
    item = json.loads(line)
    assert item["raw"] == json.loads(COMPACT)
    assert item["id"] == hashlib.sha256(COMPACT.encode()).hexdigest()
    assert decode_line(line[:-1]) == (item["id"], AT.isoformat(), COMPACT)


def test_a_body_with_line_breaks_is_stored_as_a_string():
    line = Spool.record(PRETTY.encode(), AT)
    assert line.count(b"\n") == 1 and b"\r" not in line
    assert json.loads(line)["body"] == PRETTY
    assert decode_line(line[:-1])[2] == PRETTY


def test_read_gives_every_body_exactly_and_old_lines_too(tmp_path):
    spool = Spool(tmp_path / "ws.duckdb")
    # A line as earlier versions wrote every body: a JSON string.
    old = (json.dumps({"id": hashlib.sha256(b'{"a": 1}').hexdigest(), "received_at": AT.isoformat(),
                       "body": '{"a": 1}'}) + "\n").encode()
    spool.append([Spool.record(COMPACT.encode(), AT), old, Spool.record(PRETTY.encode(), AT)])
    batch = spool.read()
    records = batch.records
    assert batch.end == spool.size() and not batch.damaged
    assert [body for _, _, body in records] == [COMPACT, '{"a": 1}', PRETTY]
    assert all(at == AT for _, at, _ in records)
    assert all(pid == hashlib.sha256(body.encode()).hexdigest() for pid, _, body in records)


def test_a_torn_last_line_is_dropped_at_the_next_start(tmp_path):
    path = tmp_path / "ws.duckdb"
    spool = Spool(path)
    spool.append([Spool.record(COMPACT.encode(), AT)])
    whole = spool.size()
    with open(spool.path, "ab") as f:                 # a crash in the middle of an append
        f.write(Spool.record(COMPACT.replace("Anna", "Bert").encode(), AT)[:50])
    assert Spool(path).size() == whole
    records = Spool(path).read().records
    assert [body for _, _, body in records] == [COMPACT]


@given(body=st.text(), pid=st.text(alphabet="0123456789abcdef", max_size=64))
def test_any_body_round_trips_on_one_line(body, pid):
    line = encode_line(pid, AT.isoformat(), body)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line[:-1]) == (pid, AT.isoformat(), body)
