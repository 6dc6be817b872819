"""Contact CSV import: consent only with evidence, bad rows by line, all or nothing,
idempotent, hostile cells stored as plain text."""

from __future__ import annotations

import csv
import io
import itertools
import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import bizchat
from bizchat.cli import main
from bizchat.errors import ImportFormatError
from bizchat.people.contact_import import import_contacts

HOSTILE = '''phone,name,consent,consent_source,consent_at,evidence,language,attributes,labels
0170 1234567,"Anna ""die Große"" Schmidt",yes,double_opt_in_form,2024-05-01 10:00,"DOI mail, confirmed 2024-05-01 10:02",de,"{""city"": ""Graz""}",vip
+49 (170) 123-4568,=cmd|' /C calc'!A0,ja,in_store,01.05.2024,signed paper form,de_AT,,
0049 170 1234569,"Robert'); DROP TABLE contacts;--",yes,,,,,,
12345,Bad Number,yes,,,,,,
0170 1234567,Duplicate Anna,,,,,,,
0170 1234570,Emoji 🎉🙂,maybe,,,,,,
0170 1234571,Bad Date,yes,form,31.02.2024,x,,,
0170 1234572,"Multi
line name",no,,,,,,
0170 1234573,Future,yes,form,2999-01-01,x,,,
0170 1234574,Too,many,cells,2024-01-01,x,de,{},a,b,c
0170 1234575,Lang,,,,,english language,,
0170 1234576,Attrs,,,,,,"[1,2]",
,No Phone,,,,,,,
0170 1234577,@SUM(1+1),,,,,,,
'''


@pytest.fixture
def shop(ws):
    return ws, ws.accounts.add("+49 30 1234567", name="Laden")["account_id"]


def write(tmp_path, text, name="contacts.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def counts(ws):
    return ws.sql("SELECT (SELECT count(*) FROM contacts) AS contacts, "
                  "(SELECT count(*) FROM consent_events) AS events, "
                  "(SELECT count(*) FROM audit_log WHERE action = 'contacts.import') AS imports"
                  ).iloc[0].tolist()


def test_hostile_csv_good_rows_kept_bad_rows_by_line(shop, tmp_path):
    ws, aid = shop
    result = import_contacts(ws, write(tmp_path, HOSTILE), aid)
    bad = {item["line"]: item["reason"] for item in result.bad}
    assert sorted(bad) == [5, 6, 7, 8, 11, 12, 13, 14, 15]
    assert "invalid phone number" in bad[5] and "12345" in bad[5]
    assert "duplicate of line 2" in bad[6]
    assert "consent value 'maybe'" in bad[7]
    assert "31.02.2024" in bad[8] and "not a date" in bad[8]
    assert "future" in bad[11]
    assert "cells" in bad[12]
    assert "language" in bad[13]
    assert "attributes" in bad[14]
    assert "no phone number" in bad[15]
    assert result.rows == 14
    assert result.imported == 5 and result.updated == 0 and result.unchanged == 0
    assert result.consent_events == 2
    assert result.ignored_columns == ["labels"]
    # Line 4 said yes without any evidence: imported, but without consent.
    assert result.consent_not_recorded == [
        {"line": 4, "reason": "consent 'yes' without evidence and consent_at"}]
    assert result.without_consent == 3

    contacts = ws.contacts.list(aid).set_index("phone_e164")
    assert contacts.loc["+491701234567", "name"] == 'Anna "die Große" Schmidt'
    assert contacts.loc["+491701234568", "name"] == "=cmd|' /C calc'!A0"
    assert contacts.loc["+491701234569", "name"] == "Robert'); DROP TABLE contacts;--"
    assert contacts.loc["+491701234572", "name"] == "Multi\nline name"   # line 9-10
    assert contacts.loc["+491701234577", "name"] == "@SUM(1+1)"
    assert contacts.loc["+491701234568", "language"] == "de-AT"
    assert contacts.loc["+491701234567", "marketing"] == "opt_in"
    assert contacts.loc["+491701234568", "marketing"] == "opt_in"
    assert contacts["marketing"].isna().sum() == 3
    anna = ws.contacts.get(aid, "+491701234567")
    assert anna["attributes"] == {"city": "Graz"}
    history = ws.consent.history(anna["contact_id"])
    assert history["source"].tolist() == ["double_opt_in_form"]
    assert str(history["recorded_at"].iloc[0]) == "2024-05-01 08:00:00+00:00"  # Berlin summer time


def test_reimport_changes_nothing(shop, tmp_path):
    ws, aid = shop
    path = write(tmp_path, HOSTILE)
    import_contacts(ws, path, aid)
    before = counts(ws)
    again = import_contacts(ws, path, aid)
    assert (again.imported, again.updated, again.unchanged, again.consent_events) == (0, 0, 5, 0)
    after = counts(ws)
    assert after[:2] == before[:2] and after[2] == before[2] + 1


def test_changed_rows_update_and_opt_out_is_recorded(shop, tmp_path):
    ws, aid = shop
    first = "phone,name,consent,consent_at,evidence,attributes\n" \
            '0170 1234567,Anna,yes,2024-05-01T10:00:00+02:00,DOI,"{""a"": 1}"\n0170 7654321,Bert,,,,\n'
    import_contacts(ws, write(tmp_path, first), aid)
    second = "phone,name,consent,attributes\n" \
             '+491701234567,Anna,no,"{""b"": 2}"\n+491707654321,Bert B.,,\n'
    result = import_contacts(ws, write(tmp_path, second, "second.csv"), aid)
    assert (result.imported, result.updated, result.unchanged) == (0, 2, 0)
    anna = ws.contacts.get(aid, "0170 1234567")
    assert anna["attributes"] == {"a": 1, "b": 2}
    assert ws.consent.current(anna["contact_id"]) == "opt_out"
    assert ws.contacts.get(aid, "0170 7654321")["name"] == "Bert B."
    # The undated opt-out is recorded once: importing the file again adds nothing.
    third = import_contacts(ws, write(tmp_path, second, "second.csv"), aid)
    assert (third.updated, third.unchanged, third.consent_events) == (0, 2, 0)
    assert len(ws.consent.history(anna["contact_id"])) == 2


def test_backdated_opt_in_in_a_file_does_not_override_a_later_opt_out(shop, tmp_path):
    ws, aid = shop
    contact = ws.contacts.add(aid, "0170 1234567")
    ws.consent.opt_out(contact["contact_id"], source="keyword")
    text = "phone,consent,consent_at,evidence\n0170 1234567,yes,2023-01-01,old paper form\n"
    result = import_contacts(ws, write(tmp_path, text), aid)
    assert result.consent_events == 1 and result.without_consent == 1
    assert not ws.consent.may_send(aid, contact["contact_id"])


def test_semicolons_german_headers_and_dates(shop, tmp_path):
    ws, aid = shop
    text = ("\ufeffTelefon;Name;Einwilligung;Datum;Nachweis;Sprache\n"
            "0170 1234567;Jörg;ja;24.12.2024 18:30;Unterschrift Laden;de\n")
    result = import_contacts(ws, write(tmp_path, text), aid)
    assert result.imported == 1 and result.consent_events == 1 and not result.bad
    history = ws.consent.history(result_contact(ws, aid))
    assert str(history["recorded_at"].iloc[0]) == "2024-12-24 17:30:00+00:00"  # CET


def result_contact(ws, aid):
    return ws.contacts.get(aid, "0170 1234567")["contact_id"]


def test_same_file_into_two_accounts_gives_separate_contacts(ws, tmp_path):
    berlin = ws.accounts.add("+49 30 1234567", name="Berlin")["account_id"]
    vienna = ws.accounts.add("+43 1 5320000", name="Wien", timezone="Europe/Vienna")["account_id"]
    path = write(tmp_path, "phone,name\n+49 170 1234567,Anna\n0664 1234567,Local\n")
    import_contacts(ws, path, berlin)
    import_contacts(ws, path, vienna)
    # National numbers are read in the account's region.
    assert ws.contacts.list(berlin)["phone_e164"].tolist() == ["+491701234567", "+496641234567"]
    assert ws.contacts.list(vienna)["phone_e164"].tolist() == ["+491701234567", "+436641234567"]
    ids_b = set(ws.contacts.list(berlin)["contact_id"])
    assert ids_b.isdisjoint(set(ws.contacts.list(vienna)["contact_id"]))


def test_audit_row_per_import_with_counts_only(shop, tmp_path):
    ws, aid = shop
    import_contacts(ws, write(tmp_path, HOSTILE), aid, actor="eva")
    log = ws.sql("SELECT actor, subject_key, details FROM audit_log WHERE action = 'contacts.import'")
    assert len(log) == 1 and log["actor"][0] == "eva" and log["subject_key"].isna().all()
    details = json.loads(log["details"][0])
    assert details["imported"] == 5 and details["bad_rows"] == 9 and details["account_id"] == aid
    everything = " ".join(ws.sql("SELECT details FROM audit_log")["details"])
    assert "1234567" not in everything and "Anna" not in everything


# --- every cell is a row's problem, never the whole import's ------------------------------------

EVERY_CELL = [
    ["phone", "name", "consent", "evidence", "consent_at", "timezone", "attributes"],
    ["0170 2000001", "Good", "yes", "form", "2024-05-31 14:05", "Europe/Vienna", '{"city": "Graz"}'],
    ["0170 2000002", "Zone folder", "", "", "", "Europe", ""],
    ["0170 2000003", "Zone too long", "", "", "", "Europe/" + "x" * 300, ""],
    ["0170 2000004", "Short offset", "yes", "form", "2024-05-31T14:05+02", "", ""],
    ["0170 2000005", "Deep", "", "", "", "", "[" * 5000],
    ["0170 2000006", "Surrogate key", "", "", "", "", '{"\\ud800": 1}'],
    ["0170 2000007", "NaN", "", "", "", "", '{"a": NaN}'],
    ["0170 2000008", "Year one", "yes", "form", "0001-01-01", "", ""],
    ["0170 2000009", "Also good", "", "", "", "", ""],
]


def test_each_hostile_cell_is_a_bad_row_with_a_reason(shop, tmp_path):
    ws, aid = shop
    buffer = io.StringIO()
    csv.writer(buffer).writerows(EVERY_CELL)
    result = import_contacts(ws, write(tmp_path, buffer.getvalue()), aid)
    reasons = {item["line"]: item["reason"] for item in result.bad}
    assert sorted(reasons) == [3, 4, 6, 7, 8, 9]
    assert "'Europe' is not an IANA zone" in reasons[3]
    assert "is not an IANA zone" in reasons[4] and len(reasons[4]) < 120
    assert "nest deeper than" in reasons[6]
    assert "lone surrogate" in reasons[7]
    assert "NaN is not a JSON value" in reasons[8]
    assert "lies before WhatsApp existed" in reasons[9]
    # The good rows are kept; "+02" is a valid ISO 8601 offset.
    assert result.imported == 3
    stored = ws.sql("""SELECT c.name, e.recorded_at FROM contacts c
                       LEFT JOIN consent_events e USING (contact_id) ORDER BY c.name""")
    assert stored["name"].tolist() == ["Also good", "Good", "Short offset"]
    assert stored["recorded_at"].dt.strftime("%H:%M").tolist()[1:] == ["12:05", "12:05"]


@pytest.mark.parametrize("value", ["Europe", "x" * 300, "zone.tab", "../../etc/passwd", "Europe//Berlin"])
def test_a_time_zone_that_names_no_zone_is_refused_cleanly(ws, tmp_path, value):
    from bizchat.errors import InvalidValue

    with pytest.raises(InvalidValue, match="is not a time zone"):
        ws.accounts.add("+49 30 1234567", name="Laden", timezone=value)
    result = CliRunner().invoke(main, ["-w", str(ws.path), "accounts", "add", "030 1234568",
                                       "--name", "L", "--timezone", value])
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert "is not a time zone" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("value", [{"a": float("nan")}, {"a": [float("inf")]}, {"\ud800": 1},
                                   {"a": {"b": {"c": None}}} | {"d": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}])
def test_attributes_that_are_no_storable_json_are_refused(ws, value):
    from bizchat.errors import InvalidValue

    account = ws.accounts.add("+49 30 1234567", name="Laden")
    contact = ws.contacts.add(account["account_id"], "0170 1234567")
    with pytest.raises(InvalidValue):
        ws.contacts.update(account["account_id"], contact["contact_id"], attributes=value)


# --- files that cannot be read: nothing is written ------------------------------------------------

@pytest.mark.parametrize(("text", "encoding", "line", "message"), [
    ("name,consent\nAnna,yes\n", "utf-8", 1, "no phone column"),
    ("phone,name,Phone Number\n0170 1234567,A,x\n", "utf-8", 1, "appears twice"),
    ("", "utf-8", 1, "empty"),
    ("phone,name\n0170 1234567,Anna\n0170 1234568,Jürgen\n", "latin-1", 3, "not UTF-8"),
    ('phone,name\n0170 1234567,Anna\n0170 1234568,"Bert\n0170 1234569,C\n', "utf-8", 3, "never closed"),
    ('phone,name\n0170 1234567,"An"na"\n', "utf-8", 2, "quote"),
])
def test_unreadable_files_raise_and_write_nothing(shop, tmp_path, text, encoding, line, message):
    ws, aid = shop
    path = write(tmp_path, text, encoding=encoding)
    before = counts(ws)
    with pytest.raises(ImportFormatError, match=message) as info:
        import_contacts(ws, path, aid)
    assert str(path) in str(info.value)
    assert info.value.line == line
    assert f"line {line}" in str(info.value) or line == 1
    assert counts(ws) == before


def test_missing_file_names_it(shop, tmp_path):
    ws, aid = shop
    with pytest.raises(ImportFormatError, match="nope.csv"):
        import_contacts(ws, tmp_path / "nope.csv", aid)


# --- any text is stored as plain text --------------------------------------------------------------

@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    ws = bizchat.open(folder / "plain.duckdb")
    return ws, ws.accounts.add("+49 30 1234567", name="Laden")["account_id"], folder


_numbers = itertools.count(1000000)
cell_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                    min_size=1, max_size=40).filter(lambda s: s.strip())


@pytest.mark.slow
@given(st.lists(st.tuples(cell_text, cell_text), min_size=1, max_size=25))
@settings(max_examples=15, deadline=None)
def test_any_name_and_attribute_round_trips(plain, cells):
    ws, aid, folder = plain
    phones = [f"+49 170 {next(_numbers)}" for _ in cells]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["phone", "name", "attributes"])
    for phone, (name, value) in zip(phones, cells, strict=True):
        writer.writerow([phone, name, json.dumps({"note": value})])
    path = folder / "many.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    result = import_contacts(ws, path, aid)
    assert not result.bad and result.imported == len(cells)
    stored = ws.contacts.list(aid).set_index("phone_e164")
    for phone, (name, value) in zip(phones, cells, strict=True):
        row = stored.loc[phone.replace(" ", "")]
        assert row["name"] == name.strip()
        assert json.loads(row["attributes"]) == {"note": value}


# --- CLI ----------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_import_contacts(tmp_path):
    w = str(tmp_path / "cli.duckdb")
    assert run("-w", w, "init").exit_code == 0  # only init creates a workspace
    path = write(tmp_path, HOSTILE)
    assert run("-w", w, "accounts", "add", "030 1234567", "--name", "L").exit_code == 0
    result = run("-w", w, "import", "contacts", str(path), "--account", "030 1234567")
    assert result.exit_code == 0, result.output
    assert "new contacts      5" in result.output
    assert "line 5: skipped: invalid phone number" in result.output
    assert "line 4: imported without consent" in result.output
    result = run("import", "contacts", str(path), "--account", "+49 30 1234567", "--json",
                 "--workspace", w)
    data = json.loads(result.output)
    assert data["unchanged"] == 5 and data["imported"] == 0 and len(data["bad"]) == 9


@pytest.mark.parametrize("args", [
    ["import", "contacts", "missing.csv", "--account", "030 1234567"],
    ["import", "contacts", "{bad}", "--account", "030 1234567"],
    ["import", "contacts", "{ok}", "--account", "+49 40 1234567"],
])
def test_cli_import_errors(tmp_path, args):
    w = str(tmp_path / "cli.duckdb")
    assert run("-w", w, "init").exit_code == 0  # only init creates a workspace
    bad = write(tmp_path, "name\nAnna\n", "bad.csv")
    ok = write(tmp_path, "phone\n0170 1234567\n", "ok.csv")
    args = [a.format(bad=bad, ok=ok) for a in args]
    assert run("-w", w, "accounts", "add", "030 1234567", "--name", "L").exit_code == 0
    result = run("-w", w, *args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
