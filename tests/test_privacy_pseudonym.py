"""Pseudonymous keys (keyed HMAC, one owner) and the append-only audit helper."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bizchat import audit, pseudonym


def test_key_is_created_once_and_kept_in_settings(ws, monkeypatch):
    monkeypatch.delenv(pseudonym.ENV, raising=False)
    with ws.transaction() as con:
        first = pseudonym.workspace_secret(con)
    with ws.transaction() as con:
        assert pseudonym.workspace_secret(con) == first
    stored = ws.sql("SELECT value FROM settings WHERE key = 'pseudonym_key'")["value"][0]
    assert stored.encode() == first and len(stored) == 64
    assert pseudonym.secret_for(ws) == first


def test_environment_key_wins_and_is_not_stored(ws, monkeypatch):
    monkeypatch.setenv(pseudonym.ENV, "a-key-from-the-vault")
    with ws.transaction() as con:
        assert pseudonym.workspace_secret(con) == b"a-key-from-the-vault"
    assert ws.sql("SELECT count(*) AS n FROM settings WHERE key = 'pseudonym_key'")["n"][0] == 0


def test_missing_key_on_a_read_only_path_is_a_clear_error(ws, monkeypatch):
    monkeypatch.delenv(pseudonym.ENV, raising=False)
    with ws.connect() as con, pytest.raises(pseudonym.MissingPseudonymKey, match="BIZCHAT_PSEUDONYM_KEY"):
        pseudonym.workspace_secret(con, create=False)


@settings(max_examples=30, deadline=None)
@given(secret=st.binary(min_size=1, max_size=100), ids=st.lists(st.integers(0, 2**62), max_size=20))
def test_sql_hmac_equals_python_hmac(secret, ids):
    """The bulk path in DuckDB is RFC 2104 HMAC-SHA256, also for keys longer than a block."""
    import duckdb

    con = duckdb.connect()
    try:
        keys = pseudonym.contact_keys(con, ids, secret=secret).tolist()
    finally:
        con.close()
    expected = [hmac.new(secret, f"contact:{i}".encode(), hashlib.sha256).hexdigest() for i in ids]
    assert keys == expected == [pseudonym.contact_key(secret, i) for i in ids]


def test_key_is_not_a_plain_hash_and_depends_on_the_secret():
    plain = hashlib.sha256(b"contact:7").hexdigest()
    assert pseudonym.contact_key(b"one", 7) != plain
    assert pseudonym.contact_key(b"one", 7) != pseudonym.contact_key(b"two", 7)
    assert pseudonym.erasure_hash(b"one", 1, "+491701234567") != pseudonym.erasure_hash(b"one", 2, "+491701234567")


def test_analyst_views_carry_keys_not_numbers(ws, monkeypatch):
    monkeypatch.setenv(pseudonym.ENV, "analyst-test-key")
    acc = ws.accounts.add("+49 30 901820", "Buchladen")
    c = ws.contacts.add(acc["account_id"], "+49 170 1234567", name="Rita Ruf")
    ws.consent.opt_in(c["contact_id"], source="double_opt_in_form", evidence="form")
    privacy = ws.privacy
    contacts = privacy.analyst_view("analyst_contacts")
    assert contacts["subject_key"].tolist() == [pseudonym.contact_key(b"analyst-test-key", c["contact_id"])]
    assert contacts["marketing_consent"].tolist() == ["opt_in"]
    assert not {"phone_e164", "wa_id", "user_id", "name", "contact_id"} & set(contacts.columns)
    messages = privacy.analyst_view("analyst_messages")
    assert not {"body", "message_id", "contact_id", "chat_id"} & set(messages.columns)
    # A new key (say, from the vault) recomputes every stored key.
    monkeypatch.setenv(pseudonym.ENV, "rotated")
    assert privacy.refresh_keys() == 1
    assert ws.sql("SELECT subject_key FROM subject_keys")["subject_key"][0] == pseudonym.contact_key(b"rotated", c["contact_id"])


def test_audit_record_and_entries(ws):
    with ws.transaction() as con:
        audit.record(con, "anna", "privacy.export", "k1", {"rows": 3})
        audit.record_many(con, "bot", "privacy.erase", ["k1", "k2"], [{"n": 1}, {"n": 2}])
        with pytest.raises(ValueError, match="actor"):
            audit.record(con, " ", "x")
    with ws.connect() as con:
        found = audit.entries(con, subject_keys=["k1"])
    assert found["action"].tolist() == ["privacy.export", "privacy.erase"]
    assert json.loads(found["details"][0]) == {"rows": 3}
    assert found["at"].dt.tz is not None
