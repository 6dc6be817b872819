"""Subject access and portability (Art. 15, 20): every row about the person, nobody else's."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from privacy_fill import envelope

import bizchat
from bizchat.cli import main
from bizchat.ingest.payloads import payload_id
from bizchat.ingest.webhooks import ingest_bodies
from bizchat.people import pseudonym

PNID = "555000111"
HOSTILE = '=HYPERLINK("http://evil.example","Rita")'


def _message(wa_id, name, mid, text, ts):
    return {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": mid, "timestamp": str(ts), "type": "text",
                          "text": {"body": text}}]}


def _shop(ws):
    a = ws.accounts.add("+49 30 901820", "Buchladen", phone_number_id=PNID)
    b = ws.accounts.add("+49 40 123456", "Buchladen Nord")
    body = envelope(PNID, "4930901820",
                    _message("491701234567", HOSTILE, "wamid.rita.1", "Habt ihr den neuen Krimi?", 1767250000),
                    _message("491709999999", "Otto", "wamid.otto.1", "Ottos geheime Frage", 1767250010))
    with ws.transaction() as con:
        ingest_bodies(con, [(payload_id(body), datetime(2026, 1, 1, tzinfo=UTC), body.decode())])
    rita = ws.contacts.get(a["account_id"], "491701234567")
    ws.consent.opt_in(rita["contact_id"], source="double_opt_in_form", evidence="Formular", actor="anna")
    ws.labels.create(a["account_id"], "Krimi")
    ws.labels.assign(a["account_id"], "Krimi", [rita["contact_id"]])
    broadcasts = ws.broadcasts
    found = broadcasts.create(a["account_id"], "Krimiabend", body="Hallo {first_name}, Krimiabend!", seed=1)
    broadcasts.schedule(found["broadcast_id"])   # due now: frozen at once
    ws.contacts.add(b["account_id"], "+49 170 1234567", name="Rita Nord")
    return a, b, rita


def test_export_has_every_table_and_only_the_person(ws, tmp_path):
    a, b, rita = _shop(ws)
    result = ws.privacy.export("+49 170 1234567", account=a["account_id"], out=tmp_path / "rita.json",
                                actor="anna")
    doc = json.loads((tmp_path / "rita.json").read_text(encoding="utf-8"))
    assert doc["format"] == "bizchat-subject-export/1"
    t = doc["tables"]
    assert [c["contact_id"] for c in t["contacts"]] == [rita["contact_id"]]
    assert t["contacts"][0]["name"] == HOSTILE                # JSON keeps the value as it is
    assert t["contacts"][0]["subject_key"] == result.subject_keys[0]
    assert [e["source"] for e in t["consent_events"]] == ["double_opt_in_form"]
    assert [lab["label"] for lab in t["contact_labels"]] == ["Krimi"]
    assert [m["body"] for m in t["messages"]] == ["Habt ihr den neuen Krimi?"]
    assert len(t["chats"]) == 1
    assert [r["broadcast"] for r in t["broadcast_recipients"]] == ["Krimiabend"]
    assert t["broadcast_recipients"][0]["body"] == f"Hallo {HOSTILE}, Krimiabend!"
    assert {e["action"] for e in t["audit_log"]} >= {"consent.opt_in"}
    # The raw batch held Otto's message too: the export shows Rita her part only.
    raw = t["raw_payloads"]
    assert len(raw) == 1
    assert "Otto" not in json.dumps(raw) and "Habt ihr" in json.dumps(raw, ensure_ascii=False)
    # Recorded, with the key and the file name, no number.
    entry = ws.sql("SELECT * FROM audit_log WHERE action = 'privacy.export'").iloc[0]
    assert entry["actor"] == "anna" and entry["subject_key"] == result.subject_keys[0]
    assert "1234567" not in entry["details"].replace(str(tmp_path), "")
    assert json.loads(entry["details"])["files"] == [str((tmp_path / "rita.json").resolve())]


@pytest.mark.slow
def test_export_without_account_covers_every_account(ws, tmp_path):
    _shop(ws)
    result = ws.privacy.export("+49 170 1234567", out=tmp_path / "all.json")
    doc = json.loads((tmp_path / "all.json").read_text(encoding="utf-8"))
    assert sorted(c["account_id"] for c in doc["tables"]["contacts"]) == [1, 2]
    assert len(result.subject_keys) == 2 and doc["request"]["accounts"] == [1, 2]
    assert len(doc["tables"]["accounts"]) == 2


@pytest.mark.slow
def test_csv_folder_is_neutralised_with_a_manifest(ws, tmp_path):
    a, _, _ = _shop(ws)
    folder = tmp_path / "rita-csv"
    result = ws.privacy.export("491701234567", account=a["account_id"], csv_dir=folder)
    assert result.path is None and result.csv_dir == folder
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["tables"]["messages"] == {"file": "messages.csv", "rows": 1}
    with open(folder / "contacts.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["name"] == "'" + HOSTILE and rows[0]["phone_e164"] == "'+491701234567"
    assert set(p.name for p in folder.iterdir()) >= {"contacts.csv", "consent_events.csv", "messages.csv",
                                                     "raw_payloads.csv", "audit_log.csv"}


def test_default_path_is_beside_the_workspace_and_named_by_key(ws, monkeypatch):
    monkeypatch.setenv(pseudonym.ENV, "export-test-key")
    a, _, rita = _shop(ws)
    result = ws.privacy.export("+49 170 1234567", account=a["account_id"])
    key = pseudonym.contact_key(b"export-test-key", rita["contact_id"])
    assert result.path.parent == ws.path.parent / "exports"
    assert result.path.name.startswith(f"subject-{key[:12]}-") and "1234567" not in result.path.name


@pytest.mark.slow
def test_cli_export(tmp_path):
    path = tmp_path / "ws.duckdb"
    _shop(bizchat.open(path))
    out = tmp_path / "x.json"
    res = CliRunner().invoke(main, ["-w", str(path), "privacy", "export", "+49 170 1234567",
                                    "--account", "+49 30 901820", "--out", str(out),
                                    "--csv-dir", str(tmp_path / "csv"), "--actor", "dpo"])
    assert res.exit_code == 0, res.output
    assert out.exists() and (tmp_path / "csv" / "manifest.json").exists()
    assert "Wrote" in res.output
    missing = CliRunner().invoke(main, ["-w", str(path), "privacy", "export", "+49 170 7777777"])
    assert missing.exit_code == 1 and "No contact" in missing.output
