"""Consent proof per contact and consent coverage per account, counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

import bizchat
from bizchat.cli import main

T = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def _shop(ws):
    a = ws.accounts.add("+49 30 901820", "Buchladen")
    b = ws.accounts.add("+43 1 5134567", "Buchladen Wien")
    rita = ws.contacts.add(a["account_id"], "+49 170 1000001", name="Rita")
    ws.consent.opt_in(rita["contact_id"], source="double_opt_in_form",
                      evidence="Formular 10.01.2026, bestätigt per Link", at=T, actor="anna")
    ws.consent.opt_out(rita["contact_id"], source="keyword", evidence="message wamid.x", at=T + timedelta(days=5))
    ws.consent.opt_in(rita["contact_id"], source="in_store", evidence="Unterschrift Kasse 2",
                      at=T + timedelta(days=9), actor="ben")
    ws.consent.opt_in(rita["contact_id"], "service", source="chat", at=T)
    otto = ws.contacts.add(a["account_id"], "+49 170 1000002", name="Otto")
    ws.consent.opt_in(otto["contact_id"], source="chat", at=T)                 # no evidence text
    karl = ws.contacts.add(a["account_id"], "+49 170 1000003", name="Karl")
    ws.consent.opt_out(karl["contact_id"], source="manual", at=T)
    ws.contacts.add(a["account_id"], "+49 170 1000004", name="Nie Gefragt")
    ws.contacts.add(b["account_id"], "+43 664 1234567", name="Wien")
    return a, b, rita


def test_proof_has_every_event_with_source_evidence_and_recorder(ws):
    a, _, rita = _shop(ws)
    proof = ws.privacy.consent_proof("+49 170 1000001", account=a["account_id"])
    h = proof.history
    assert h["action"].tolist() == ["opt_in", "opt_in", "opt_out", "opt_in"]
    assert h["purpose"].tolist() == ["marketing", "service", "marketing", "marketing"]
    assert h["source"].tolist() == ["double_opt_in_form", "chat", "keyword", "in_store"]
    assert h["evidence"][0] == "Formular 10.01.2026, bestätigt per Link"
    assert h["recorded_by"].tolist() == ["anna", "bizchat", "bizchat", "ben"]
    assert h["logged_at"].notna().all()
    assert proof.current["marketing"]["state"] == "opt_in"
    assert proof.current["marketing"]["source"] == "in_store"
    assert proof.current["service"]["state"] == "opt_in"
    assert len(proof.subject_key) == 64
    text = proof.summary()
    assert "marketing   opt_in since 2026-01-19" in text and "Unterschrift Kasse 2" in text


def test_coverage_per_account(ws):
    a, b, _ = _shop(ws)
    cov = ws.privacy.coverage().set_index("account_id")
    first = cov.loc[a["account_id"]]
    assert (first["contacts"], first["marketing_opt_in"], first["opt_in_with_evidence"],
            first["opt_in_without_evidence"], first["marketing_opt_out"], first["never_asked"]) == (4, 2, 1, 1, 1, 1)
    assert first["opt_in_share"] == 0.5 and first["evidence_share"] == 0.5
    second = cov.loc[b["account_id"]]
    assert (second["contacts"], second["marketing_opt_in"], second["never_asked"]) == (1, 0, 1)
    only = ws.privacy.coverage(a["account_id"])
    assert only["account_id"].tolist() == [a["account_id"]]
    sources = ws.privacy.coverage_by_source(a["account_id"])
    assert sorted(zip(sources["source"], sources["opt_ins"], sources["with_evidence"], strict=True)) == [
        ("chat", 1, 0), ("in_store", 1, 1)]


def test_coverage_of_an_empty_account_is_zero(ws):
    ws.accounts.add("+49 30 901820", "Buchladen")
    row = ws.privacy.coverage().iloc[0]
    assert row["contacts"] == 0 and row["marketing_opt_in"] == 0


@pytest.mark.slow
def test_cli_consent_and_coverage(tmp_path):
    path = tmp_path / "ws.duckdb"
    _shop(bizchat.open(path))
    runner = CliRunner()
    out = runner.invoke(main, ["-w", str(path), "privacy", "consent", "0170 1000001", "--account", "+49 30 901820"])
    assert out.exit_code == 0, out.output
    assert "double_opt_in_form" in out.output and "Unterschrift Kasse 2" in out.output
    cov = runner.invoke(main, ["-w", str(path), "privacy", "coverage", "--csv"])
    assert cov.exit_code == 0 and cov.output.splitlines()[0].startswith("account_id,account,")
    assert "'+4930901820" in cov.output      # neutralised: a leading + is a formula start
