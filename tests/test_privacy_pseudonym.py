"""Pseudonymous keys (keyed HMAC, one owner) and the append-only audit helper."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bizchat
from bizchat.errors import BizchatError
from bizchat.people import pseudonym
from bizchat.store import audit


def test_key_is_made_with_the_workspace_and_kept_beside_it(tmp_path, monkeypatch):
    monkeypatch.delenv(pseudonym.ENV, raising=False)
    ws = bizchat.open(tmp_path / "shop.duckdb")
    key_file = tmp_path / "shop.duckdb.key"
    stored = key_file.read_text().strip()
    assert len(stored) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with ws.transaction() as con:
        assert pseudonym.workspace_secret(con) == stored.encode()
    assert pseudonym.secret_for(ws) == stored.encode()
    assert bizchat.open(ws.path).path == ws.path and key_file.read_text().strip() == stored
    assert ws.sql("SELECT count(*) AS n FROM settings WHERE key = 'pseudonym_key'")["n"][0] == 0


def test_environment_key_wins_and_is_not_stored(tmp_path, monkeypatch):
    monkeypatch.setenv(pseudonym.ENV, "a-key-from-the-vault")
    ws = bizchat.open(tmp_path / "shop.duckdb")
    with ws.transaction() as con:
        assert pseudonym.workspace_secret(con) == b"a-key-from-the-vault"
    assert not (tmp_path / "shop.duckdb.key").exists()


def test_a_lost_key_file_is_a_clear_error_not_a_silent_new_key(ws, monkeypatch):
    monkeypatch.delenv(pseudonym.ENV, raising=False)
    ws.privacy.refresh_keys()                      # keys were handed out with the key
    key_file = ws.path.with_name(ws.path.name + ".key")
    old = key_file.read_bytes()
    key_file.unlink()
    with ws.connect() as con, pytest.raises(pseudonym.MissingPseudonymKey, match=".key"):
        pseudonym.workspace_secret(con)
    assert not key_file.exists()
    reader = bizchat.open(ws.path, read_only=True)
    with pytest.raises(pseudonym.MissingPseudonymKey, match="BIZCHAT_PSEUDONYM_KEY"):
        pseudonym.secret_for(reader)
    # Starting over is explicit, and recomputes the stored keys.
    assert pseudonym.new_key(ws) != old.strip()
    with pytest.raises(BizchatError, match="has its key"):
        pseudonym.new_key(ws)


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


# --- the key is out of reach of every read-only query --------------------------------------

def _every_cell(ws) -> str:
    """Every value of every table and view, as text."""
    names = ws.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
    return "\n".join(ws.sql(f'SELECT * FROM "{name}"').astype(str).to_csv()
                     for name in names["table_name"])


def _filled(ws):
    acc = ws.accounts.add("+49 30 901820", "Buchladen")
    c = ws.contacts.add(acc["account_id"], "+49 170 1234567", name="Rita Ruf")
    ws.consent.opt_in(c["contact_id"], source="form", evidence="DOI")
    ws.privacy.refresh_keys()
    return c


@pytest.mark.slow
def test_no_read_only_query_reveals_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv(pseudonym.ENV, raising=False)
    ws = bizchat.open(tmp_path / "shop.duckdb")
    _filled(ws)
    key = pseudonym.secret_for(ws).decode()
    assert key not in _every_cell(ws)
    assert key.encode() not in ws.path.read_bytes()
    for query in (f"SELECT * FROM read_text('{tmp_path / 'shop.duckdb.key'}')",
                  f"SELECT * FROM read_csv('{tmp_path}/*.key')", "SELECT getenv('HOME')"):
        with pytest.raises(BizchatError):
            ws.sql(query)
    from click.testing import CliRunner

    from bizchat.cli import main
    result = CliRunner().invoke(main, ["-w", str(ws.path), "sql",
                                       "SELECT value FROM settings WHERE key = 'pseudonym_key'"])
    assert result.exit_code == 0 and key not in result.output and "(no rows)" in result.output


def _old_workspace(path, key: str):
    """A workspace as bizchat wrote it before migration 0006: the key in settings."""
    import duckdb

    from bizchat import store

    con = duckdb.connect(str(path))
    store.migrate(con, upto=5)
    con.execute("INSERT INTO settings VALUES ('pseudonym_key', ?)", [key])
    con.execute("INSERT INTO accounts (account_id, phone_e164, number_type, display_name) "
                "VALUES (1, '+4930901820', 'fixed_line', 'Alt')")
    con.execute("INSERT INTO contacts (contact_id, account_id, phone_e164, wa_id, created_at) "
                "VALUES (7, 1, '+491701234567', '491701234567', now())")
    pseudonym.refresh(con, secret=key.encode())
    con.execute("CHECKPOINT")
    con.close()


def test_the_migration_moves_the_key_out_and_compacts(tmp_path, monkeypatch):
    monkeypatch.delenv(pseudonym.ENV, raising=False)
    path, key = tmp_path / "old.duckdb", "0123456789abcdef" * 4
    _old_workspace(path, key)
    assert key.encode() in path.read_bytes()
    ws = bizchat.open(path)
    key_file = tmp_path / "old.duckdb.key"
    assert key_file.read_text().strip() == key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key.encode() not in path.read_bytes()           # compacted: physically gone
    assert ws.sql("SELECT count(*) AS n FROM settings WHERE key IN "
                  "('pseudonym_key', 'privacy.compaction_pending')")["n"][0] == 0
    # The same key: the stored pseudonyms stay as they were.
    assert ws.privacy.refresh_keys() == 0
    assert ws.sql("SELECT subject_key FROM subject_keys")["subject_key"].tolist() == [
        pseudonym.contact_key(key.encode(), 7)]


def test_the_migration_refuses_a_key_file_with_another_key(tmp_path, monkeypatch):
    from bizchat.errors import SchemaError

    monkeypatch.delenv(pseudonym.ENV, raising=False)
    path, key = tmp_path / "old.duckdb", "0123456789abcdef" * 4
    _old_workspace(path, key)
    (tmp_path / "old.duckdb.key").write_text("another-workspaces-key\n")
    with pytest.raises(SchemaError, match="another pseudonymisation key"):
        bizchat.open(path)
    import duckdb

    con = duckdb.connect(str(path), read_only=True)  # unchanged: version 5, its key inside
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0] == 5
    assert con.execute("SELECT value FROM settings WHERE key = 'pseudonym_key'").fetchall() == [(key,)]
    con.close()


def test_a_copy_needs_its_key_file(tmp_path, monkeypatch):
    import shutil

    monkeypatch.delenv(pseudonym.ENV, raising=False)
    ws = bizchat.open(tmp_path / "shop.duckdb")
    c = _filled(ws)
    original = pseudonym.contact_key(pseudonym.secret_for(ws), c["contact_id"])
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(ws.path, copy / "shop.duckdb")
    alone = bizchat.open(copy / "shop.duckdb", read_only=True)
    with pytest.raises(pseudonym.MissingPseudonymKey, match="shop.duckdb.key"):
        alone.stats.recipients()
    shutil.copy(tmp_path / "shop.duckdb.key", copy / "shop.duckdb.key")
    assert pseudonym.contact_key(pseudonym.secret_for(alone), c["contact_id"]) == original


def test_erasure_and_compaction_keep_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv(pseudonym.ENV, raising=False)
    ws = bizchat.open(tmp_path / "shop.duckdb")
    c = _filled(ws)
    other = ws.contacts.add(c["account_id"], "+49 170 7654321", name="Bleibt")
    key = pseudonym.secret_for(ws)
    ws.privacy.erase("+49 170 1234567")
    ws.privacy.compact()
    assert pseudonym.secret_for(bizchat.open(ws.path, read_only=True)) == key
    ws.privacy.refresh_keys()
    assert ws.sql("SELECT subject_key FROM subject_keys")["subject_key"].tolist() == [
        pseudonym.contact_key(key, other["contact_id"])]
    assert key not in ws.path.read_bytes()
