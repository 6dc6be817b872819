"""The spool survives a kill at any instant (issue 13, item 3).

- an offset can never point into the middle of a line or past what was ingested;
- a damaged line is moved to the quarantine file (log line, /health count), never
  silently dropped, and never blocks the lines behind it;
- erasure never removes a body that is not in the workspace yet;
- kill -9 at every step of a batch's commit, of emptying the spool and of erasure's
  rewrite, then a restart: every acknowledged body is stored exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from webhook_samples import PNID, dumps, text_message

import bizchat
from bizchat.ingest.batches import ingest_isolated
from bizchat.ingest.spool import Spool
from bizchat.privacy import Privacy
from bizchat.receiver.ingester import Ingester

T0 = 1_790_000_000
TESTS = Path(__file__).resolve().parent
PERSON = "491701111111"          # the customer erased in the fault scenario


@pytest.fixture
def workspace(tmp_path):
    ws = bizchat.open(tmp_path / "ws.duckdb")
    ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID)
    return ws


def body(n: int, wa: str = "491702222222") -> bytes:
    """Body ``n``: message wamid.N<n> from ``wa``; a body of the erased person also holds
    another customer's message wamid.M<n> (erasure keeps that part)."""
    doc = text_message(wa, f"wamid.N{n}", f"Nachricht {n} " + "x" * 300, T0 + n)
    if wa == PERSON:
        other = text_message("491703333333", f"wamid.M{n}", f"Auch dabei {n}", T0 + n)
        value, more = doc["entry"][0]["changes"][0]["value"], other["entry"][0]["changes"][0]["value"]
        value["contacts"] += more["contacts"]
        value["messages"] += more["messages"]
    return dumps(doc)


def drain(path) -> int:
    ingester, total = Ingester(path, Spool(path, repair=False)), 0
    while done := ingester.run_once():
        total += done
    return total


def stored(ws) -> list[str]:
    """Message ids of the bodies stored (erasure anonymises the erased person's as erased.*)."""
    return sorted(ws.sql("SELECT message_id FROM messages WHERE message_id LIKE 'wamid.%'")["message_id"])


def test_an_offset_left_by_a_kill_while_emptying_cannot_point_into_a_line(workspace):
    """The state an earlier bizchat left when killed between writing the offset and
    emptying the spool: an empty spool, the offset still at 312174. Bodies arriving after
    the restart must all be stored (before, every batch failed on half a line, for good)."""
    spool_path = Path(f"{workspace.path}.spool")
    spool_path.write_bytes(b"")
    Path(f"{workspace.path}.spool.offset").write_text("312174\n")
    spool = Spool(workspace.path)                        # the receiver starts
    for n in range(0, 1200, 100):
        spool.append([Spool.record(body(i)) for i in range(n, n + 100)])
    assert spool.size() > 312174
    assert drain(workspace.path) == 1200
    assert len(stored(workspace)) == 1200 and spool.pending_bytes() == 0


def test_an_offset_is_only_taken_where_a_line_ends_in_its_own_file(workspace):
    spool = Spool(workspace.path)
    spool.append([Spool.record(body(i)) for i in range(3)])
    generation, start = spool.head()
    offset_file = spool.offset_path
    for text in (f"{generation} {start + 7}",          # into a line
                 f"{generation} {spool.size() + 50}",  # past the end
                 f"0123456789abcdef {start}",          # another file's offset
                 "garbage"):
        offset_file.write_text(text)
        assert spool.offset() == start, text
    first = spool.read(1)                              # one line
    spool.commit(first)
    assert spool.offset() == first.end and offset_file.read_text() == f"{generation} {first.end}"


def test_a_damaged_line_is_quarantined_once_and_the_lines_behind_it_are_stored(workspace, caplog):
    spool = Spool(workspace.path)
    spool.append([Spool.record(body(1)), Spool.record(body(2))])
    damaged = b'{"id":"abc","received_at":"2026-12-06T10:00:00+00:00","raw":{"object":"whatsa'
    with open(spool.path, "ab") as f:                  # a line torn and glued, or hand-edited
        f.write(damaged + b"\n" + b'\xff\xfe not even UTF-8\n')
    spool.append([Spool.record(body(3))])
    with caplog.at_level(logging.WARNING, logger="bizchat.ingest.spool"):
        assert drain(workspace.path) == 5
    assert stored(workspace) == ["wamid.N1", "wamid.N2", "wamid.N3"]
    assert spool.quarantine_path.read_bytes() == damaged + b"\n" + b'\xff\xfe not even UTF-8\n'
    assert spool.quarantined() == 2
    assert sum("cannot be read" in r.getMessage() for r in caplog.records) == 2
    # Seen again after a crash before the offset moved: still once in the quarantine.
    spool.quarantine([(0, damaged, "again")])
    assert spool.quarantined() == 2


def test_erasure_keeps_every_body_not_yet_in_the_workspace(workspace):
    """Before, erasure dropped every line before the spool offset as "stored"; with an
    offset that ran ahead of the workspace (see above) it deleted acknowledged bodies."""
    spool = Spool(workspace.path)
    spool.append([Spool.record(body(i)) for i in range(5)])
    bogus = spool.read(3 * len(Spool.record(body(0))) - 1)      # three lines, never ingested
    spool.commit(bogus)                                          # an offset ahead of DuckDB
    assert len(Spool(workspace.path).read().records) == 2
    with workspace.transaction() as con:                         # someone else's message
        from bizchat.ingest.payloads import payload_id
        from bizchat.ingest.webhooks import ingest_bodies

        other = body(99, wa=PERSON).decode()
        ingest_bodies(con, [(payload_id(other), None, other)])
    Privacy(workspace).erase("+" + PERSON, actor="test", compact=False)
    assert drain(workspace.path) == 5                            # the new file, from the top
    assert stored(workspace) == ["wamid.M99", *(f"wamid.N{i}" for i in range(5))]


# --- kill -9 at every step ------------------------------------------------------------------

SCENARIO = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    import bizchat
    from bizchat.receiver.ingester import Ingester
    from bizchat.privacy import Privacy
    from bizchat.ingest.spool import Spool
    from test_spool_crash import PERSON, body

    path = Path(sys.argv[1])
    spool = Spool(path)                      # the receiver's side
    ws = bizchat.open(path)
    ingester = Ingester(path, Spool(path, repair=False), batch_bytes=2500)

    def accept(numbers, wa="491702222222"):
        for n in numbers:
            spool.append([Spool.record(body(n, wa))])
            print("ack", n, flush=True)      # the 200 goes out only now

    def step(name):
        print("step", name, flush=True)

    step("ingest")
    accept(range(0, 8))
    ingester.run_once()                      # several batches: offsets, then a new file
    accept(range(8, 10), PERSON)
    with open(spool.path, "ab") as f:        # a damaged line, naming the person
        f.write(b'{"id":"torn","received_at":"2026-01-01T00:00:00+00:00","raw":{"from":"'
                + PERSON.encode() + b'"\\n')
    accept(range(10, 14))
    ingester.run_once()                      # quarantine, offsets, a new file
    accept(range(14, 16), PERSON)            # pending at the erasure
    accept(range(16, 18))
    step("erase")
    Privacy(ws).erase("+" + PERSON, actor="test", compact=False)
    step("erased")
    accept(range(18, 20))
    ingester.run_once()
    step("done")
""")

KILL_POINTS = [
    "spool.append.written@3", "spool.append.synced@3",
    "ingest.before_commit", "spool.commit", "spool.offset.written", "spool.offset.renamed",
    "spool.rotate.written", "spool.rotate.renamed", "spool.quarantined",
    "ingest.before_commit@4", "spool.commit@3",
    "erase.spool.read", "erase.spool.written", "erase.spool.renamed",
    "erase.quarantine.written", "erase.quarantine.renamed", "erase.before_commit",
    "spool.commit@5", "spool.rotate.renamed@3",
]
PERSON_BODIES = {8, 9, 14, 15}


def run_until_killed(path: Path, point: str) -> tuple[list[int], set[str], int]:
    env = {**os.environ, "BIZCHAT_FAULT": point}
    run = subprocess.run([sys.executable, "-c", SCENARIO, str(path), str(TESTS)], env=env,
                         capture_output=True, text=True, timeout=120)
    lines = run.stdout.split("\n")
    acked = [int(line.split()[1]) for line in lines if line.startswith("ack ")]
    steps = {line.split()[1] for line in lines if line.startswith("step ")}
    return acked, steps, run.returncode


@pytest.mark.slow
def test_kill_at_every_step_of_commit_and_erasure_loses_no_acknowledged_body(tmp_path):
    figures = []
    for point in KILL_POINTS:
        path = tmp_path / point.replace("@", "_") / "ws.duckdb"
        path.parent.mkdir()
        ws = bizchat.open(path)
        ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID)
        acked, steps, code = run_until_killed(path, point)
        assert code == -9 and "done" not in steps, f"{point}: the scenario was not killed ({code})"
        # The restart: the receiver repairs the spool, the ingester drains it, and an
        # erasure that was cut short is run again, as its user would.
        Spool(path).close()
        drain(path)
        erased = "erased" in steps
        if "erase" in steps and not erased:
            Privacy(ws).erase("+" + PERSON, actor="test", compact=False)
            erased = True
        drain(path)
        messages = ws.sql("SELECT message_id, count(*) AS n FROM messages GROUP BY 1")
        counts = dict(zip(messages["message_id"], messages["n"], strict=True))
        want = {f"wamid.N{n}" for n in acked if not (erased and n in PERSON_BODIES)}
        want |= {f"wamid.M{n}" for n in acked if n in PERSON_BODIES}
        lost = sorted(want - set(counts))
        doubled = sorted(m for m, c in counts.items() if c > 1)
        assert not lost and not doubled, f"{point}: lost {lost}, doubled {doubled}"
        if erased:
            assert not {f"wamid.N{n}" for n in PERSON_BODIES} & set(counts), point
        # Every body is one raw_payloads row (the one being appended at the kill may be
        # there too: it was never acknowledged, so Meta sends it again, and it counts once).
        raw = ws.sql("SELECT count(*) AS n, count(DISTINCT payload_id) AS d FROM raw_payloads").iloc[0]
        extra = 1 if point.startswith("spool.append") else 0
        assert raw["n"] == raw["d"] and len(acked) <= raw["n"] <= len(acked) + extra, point
        quarantine = Path(f"{path}.spool.quarantine")
        if "erase" in steps or any(n >= 10 for n in acked):
            assert quarantine.read_bytes().count(b'"id":"torn"') == 1, point
            assert (PERSON.encode() in quarantine.read_bytes()) is not erased, point
        assert Spool(path, repair=False).pending_bytes() == 0
        figures.append((point, len(acked), int(raw["n"]), len(want), len(lost)))
    print("\nkill point                  acknowledged  bodies stored  messages expected  lost")
    for point, acked, bodies, want, lost in figures:
        print(f"{point:28} {acked:12} {bodies:14} {want:18} {lost:5}")
    print(f"{len(figures)} kill points, {sum(f[1] for f in figures)} bodies acknowledged, "
          f"{sum(f[2] for f in figures)} stored once each (a body being appended at the kill, "
          f"never acknowledged, may be among them), {sum(f[3] for f in figures)} messages "
          f"expected (the erased person's excepted), {sum(f[4] for f in figures)} lost")


def test_a_spool_written_by_the_previous_version_ingests_after_an_upgrade(workspace):
    """tests/fixtures/spool/written-by-505c7ec.spool was written by Spool.append of
    commit 505c7ec (before the spool reading was rewritten): three compact message bodies,
    a status body, a pretty-printed body (stored as a JSON string). Its offset says the
    first two lines were ingested before the upgrade; the rest follow exactly once, and
    reading it all again (offset lost) stores nothing twice."""
    import shutil

    fixture = TESTS / "fixtures" / "spool" / "written-by-505c7ec.spool"
    data = fixture.read_bytes()
    lines = data.split(b"\n")
    generation = lines[0].split(b'"')[3].decode()
    shutil.copy(fixture, f"{workspace.path}.spool")
    read = Spool(workspace.path, repair=False).read()
    assert len(read.records) == 5 and not read.damaged
    assert read.records[4][2] == json.dumps(json.loads(read.records[4][2]), indent=2)
    # The old receiver ingested the first two, then stopped; the new one starts.
    with workspace.connect() as con:
        ingest_isolated(con, read.records[:2])
    offset = len(lines[0]) + 1 + len(lines[1]) + 1 + len(lines[2]) + 1
    Path(f"{workspace.path}.spool.offset").write_text(f"{generation} {offset}")
    assert drain(workspace.path) == 3
    want = ["wamid.U1", "wamid.U2", "wamid.U3", "wamid.U4"]
    assert stored(workspace) == want
    assert workspace.sql("SELECT count(*) AS n FROM message_events")["n"][0] == 3
    assert workspace.sql("SELECT count(*) AS n FROM raw_payloads WHERE state = 'ingested'")["n"][0] == 5
    texts = workspace.sql("SELECT body FROM messages WHERE message_id = 'wamid.U1'")["body"]
    assert texts[0] == "Vor dem Update 1 Grüße 👋"
    # Offset lost: everything is read again and nothing is stored twice.
    shutil.copy(fixture, f"{workspace.path}.spool")
    Path(f"{workspace.path}.spool.offset").unlink(missing_ok=True)
    assert drain(workspace.path) == 5
    assert stored(workspace) == want
    assert workspace.sql("SELECT count(*) AS n FROM raw_payloads")["n"][0] == 5
