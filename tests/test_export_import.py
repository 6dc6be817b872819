"""A chat export stored as a chat of an account: directions, times in the account's
zone, idempotent re-import, keyword opt-outs, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from bizchat.cli import main
from bizchat.errors import ImportFormatError

EXPORT = """\
14.03.25, 09:58 - Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses Chats kann sie lesen.
14.03.25, 09:58 - +49 170 1234567: Guten Morgen! Ist "Der kleine Drache" wieder da?
14.03.25, 10:02 - Lindenblatt Verlag: Guten Morgen, ja! Sollen wir eins zurücklegen?
14.03.25, 10:05 - +49 170 1234567: Ja bitte.
Ich komme am Samstag.
14.03.25, 10:05 - +49 170 1234567: <Medien ausgeschlossen>
30.03.25, 02:30 - +49 170 1234567: Ja bitte.
Ich komme am Samstag.
"""


@pytest.fixture
def account(ws):
    return ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", timezone="Europe/Berlin")


def do_import(ws, path, **kw):
    from bizchat.ingest.export_import import import_export

    with ws.transaction() as con:
        return import_export(con, "+49 30 901820", path, **kw)


def test_export_becomes_a_chat_with_directions_and_utc_times(ws, account, tmp_path):
    path = tmp_path / "WhatsApp Chat mit +49 170 1234567.txt"
    path.write_text(EXPORT, encoding="utf-8")
    result = do_import(ws, path)
    assert (result.messages, result.new, result.system_lines) == (5, 5, 1)
    assert (result.inbound, result.outbound) == (4, 1)
    contact = ws.sql("SELECT phone_e164, account_id FROM contacts").values.tolist()
    assert contact == [["+491701234567", account["account_id"]]]
    rows = ws.sql("SELECT direction, kind, body, created_at FROM messages ORDER BY created_at, message_id")
    assert rows["direction"].tolist() == ["in", "out", "in", "in", "in"]
    assert "Ja bitte.\nIch komme am Samstag." in rows["body"].tolist()[2:4]  # same minute
    assert set(rows["kind"]) == {"text", "media"}
    # 09:58 in Berlin in March (CET) is 08:58 UTC; 30 March 02:30 does not exist (DST): shifted.
    assert rows["created_at"][0] == datetime(2025, 3, 14, 8, 58, tzinfo=UTC)
    assert rows["created_at"][4] == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)
    chat = ws.sql("SELECT last_inbound_at FROM chats")["last_inbound_at"][0]
    assert chat == rows["created_at"][4]


def test_reimport_and_overlapping_export_store_each_message_once(ws, account, tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text(EXPORT, encoding="utf-8")
    do_import(ws, path)
    again = do_import(ws, path)
    assert again.new == 0
    longer = tmp_path / "later.txt"
    longer.write_text(EXPORT + "01.04.25, 12:00 - Lindenblatt Verlag: Liegt bereit!\n", encoding="utf-8")
    assert do_import(ws, longer).new == 1
    assert ws.sql("SELECT count(*) AS n FROM messages")["n"][0] == 6
    # Identical lines at the same minute are two messages, not one.
    assert ws.sql("SELECT count(*) AS n FROM messages WHERE body LIKE 'Ja bitte.%'")["n"][0] == 2


def test_saved_name_needs_the_contact_phone(ws, account, tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("14.03.25, 09:58 - Erika: Hallo\n14.03.25, 10:00 - Lindenblatt Verlag: Hallo Erika\n",
                    encoding="utf-8")
    with pytest.raises(ImportFormatError, match="--contact-phone"):
        do_import(ws, path)
    result = do_import(ws, path, contact_phone="0170 7654321")
    assert result.new == 2
    assert ws.sql("SELECT phone_e164, name FROM contacts").values.tolist() == [["+491707654321", "Erika"]]


def test_group_chats_and_unreadable_files_are_refused_and_nothing_is_stored(ws, account, tmp_path):
    group = tmp_path / "group.txt"
    group.write_text("14.03.25, 09:58 - Anna: Hi\n14.03.25, 09:59 - Ben: Hi\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="authors"):
        do_import(ws, group)
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not an export\nat all\n", encoding="utf-8")
    with pytest.raises(ImportFormatError):
        do_import(ws, junk)
    assert ws.sql("SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM contacts) AS n")["n"][0] == 0


def test_a_stop_in_the_imported_chat_opts_out(ws, account, tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("14.03.25, 09:58 - +49 170 1234567: Hallo\n14.03.25, 10:58 - +49 170 1234567: STOP\n",
                    encoding="utf-8")
    do_import(ws, path)
    state = ws.sql("SELECT state, source FROM current_consent WHERE purpose = 'marketing'")
    assert state.values.tolist() == [["opt_out", "keyword"]]


def test_cli_import_export(ws, account, tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text(EXPORT, encoding="utf-8")
    args = ["-w", str(ws.path), "import", "export", str(path), "--account", "+49 30 901820"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "5 new" in result.output
    result = CliRunner().invoke(main, args)
    assert "0 new, 5 already stored" in result.output


def test_a_real_layout_with_invisible_marks_loses_no_message_and_its_stop_counts(ws, account):
    """Our German Android sample carries U+FEFF at line starts, U+202A/U+202C around the
    customer's number and a "\u200eSTOP": every message is stored and the STOP opts out."""
    from pathlib import Path

    sample = Path(__file__).parent / "fixtures" / "exports" / "android_de_marks.txt"
    result = do_import(ws, sample)
    assert (result.messages, result.system_lines, result.inbound, result.outbound) == (8, 2, 5, 3)
    assert ws.sql("SELECT phone_e164 FROM contacts")["phone_e164"].tolist() == ["+491701234567"]
    stop = ws.sql("SELECT body, direction FROM messages WHERE body = 'STOP'")
    assert stop.values.tolist() == [["STOP", "in"]]
    state = ws.sql("SELECT state, source FROM current_consent WHERE purpose = 'marketing'")
    assert state.values.tolist() == [["opt_out", "keyword"]]
