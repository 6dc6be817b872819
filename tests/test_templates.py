"""Templates: checked when created, rendered per recipient by the one safe renderer."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from broadcast_helpers import account, contact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webhook_samples import FIXTURES

from bizchat.campaigns import templates as tpl
from bizchat.errors import Conflict, InvalidValue, NotFound, TemplateError
from bizchat.messaging import render


@pytest.fixture
def templates(ws):
    return ws.templates


@pytest.fixture
def acc(ws):
    return account(ws)


def test_create_get_list(templates, acc):
    made = templates.create(
        acc["account_id"], "sommer_aktion", "Hallo {first_name}, {angebot} bis {datum}.",
        header="Sommer bei {business_name}", footer="Abmelden: STOP",
        buttons=[{"type": "url", "text": "Zum Shop", "url": "https://linde.example/s/{code}"},
                 "Keine Werbung"], extra_placeholders=["angebot", "datum", "code"])
    assert made["name"] == "sommer_aktion" and made["language"] == "de"
    assert made["category"] == "marketing"
    assert made["buttons"] == [
        {"type": "url", "text": "Zum Shop", "url": "https://linde.example/s/{code}"},
        {"type": "quick_reply", "text": "Keine Werbung"}]
    assert made["placeholders"] == ["business_name", "first_name", "angebot", "datum", "code"]
    assert templates.get(acc["phone_e164"], "sommer_aktion")["template_id"] == made["template_id"]
    assert templates.get(acc["account_id"], made["template_id"])["body"] == made["body"]
    listed = templates.list(acc["account_id"])
    assert listed["name"].tolist() == ["sommer_aktion"] and listed["broadcasts"].tolist() == [0]


@pytest.mark.parametrize("body", [
    "Hallo {__class__}", "Hallo {0}", "Hallo {}", "Hallo {a.b}", "Hallo {a[0]}",
    "Hallo {name!r}", "Hallo {name:>9}", "Hallo {first_name", "Hallo first_name}",
    "Hallo {{first_name}", "Hallo {a{b}}", "Hi {_private}", "Hi {Name}", "Hi { name }",
])
def test_hostile_body_is_refused_at_creation(templates, acc, body):
    with pytest.raises(TemplateError):
        templates.create(acc["account_id"], "boese", body)
    assert templates.list(acc["account_id"]).empty


@pytest.mark.parametrize("part", [
    {"header": "Hallo {__class__}"}, {"header": "{a} und {b}"}, {"footer": "Tschüss {name}"},
    {"footer": "{0}"}, {"buttons": [{"type": "url", "text": "Go",
                                     "url": "https://x.example/{a.b}"}]},
    {"buttons": [{"type": "url", "text": "Go", "url": "https://x.example/{a}/x"}]},
    {"buttons": ["Ja {bitte}"]},
])
def test_hostile_header_footer_buttons_are_refused(templates, acc, part):
    with pytest.raises(TemplateError):
        templates.create(acc["account_id"], "boese", "Hallo", **part)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"name": "Sommer Aktion"}, "sommer_aktion"),
    ({"category": "newsletter"}, "category"),
    ({"buttons": [{"type": "call", "text": "x"}]}, "quick_reply or url"),
    ({"buttons": [{"type": "url", "text": "Shop", "url": "ftp://x"}]}, "https://"),
    ({"buttons": ["x" * 26]}, "25"),
    ({"buttons": [{"type": "url", "text": f"L{i}", "url": "https://a.example"}
                  for i in range(3)]}, "at most 2 URL"),
    ({"buttons": [f"B{i}" for i in range(11)]}, "at most 10"),
    ({"language": "deutsch!"}, "language"),
])
def test_bad_fields_say_what_to_do(templates, acc, kwargs, fragment):
    args = {"name": "ok_name", "body": "Hallo", **kwargs}
    with pytest.raises(InvalidValue, match=fragment):
        templates.create(acc["account_id"], args.pop("name"), args.pop("body"), **args)


def test_length_limits(templates, acc):
    with pytest.raises(TemplateError, match="1024"):
        templates.create(acc["account_id"], "lang", "x" * 1025)
    with pytest.raises(TemplateError, match="empty"):
        templates.create(acc["account_id"], "leer", "   ")
    with pytest.raises(TemplateError, match="60"):
        templates.create(acc["account_id"], "kopf", "Hallo", header="h" * 61)


def test_names_are_unique_per_account_and_language(ws, templates, acc):
    templates.create(acc["account_id"], "gruss", "Hallo")
    with pytest.raises(Conflict):
        templates.create(acc["account_id"], "gruss", "Hallo nochmal")
    templates.create(acc["account_id"], "gruss", "Hello", language="en")
    other = account(ws, "+49 40 5550100", "Zweiter Laden")
    templates.create(other["account_id"], "gruss", "Moin")
    with pytest.raises(NotFound):
        templates.get(other["account_id"], "gibtsnicht")
    assert templates.get(acc["account_id"], "gruss", language="en")["body"] == "Hello"


def test_slug():
    assert tpl.slug("Sommer-Aktion 2025!") == "sommer_aktion_2025"
    assert tpl.slug("Größe & Maß") == "grosse_mass"
    assert tpl.slug("!!!") == "broadcast"


def test_preview_for_a_contact_uses_name_attributes_and_business(ws, templates, acc):
    person = contact(ws, acc, 1, name="  Anna   Maria Berg ", attributes={"stadt": "Graz", "punkte": 120})
    templates.create(acc["account_id"], "punkte",
                     "Hallo {first_name} ({name}) aus {stadt}: {punkte} Punkte bei {business_name}.",
                     footer="Linde")
    shown = templates.preview(acc["account_id"], "punkte", person["contact_id"])
    assert shown.text == ("Hallo Anna (Anna Maria Berg) aus Graz: 120 Punkte bei Buchladen Linde."
                          "\n\nLinde")
    assert shown.params == {"first_name": "Anna", "name": "Anna Maria Berg", "stadt": "Graz",
                            "punkte": "120", "business_name": "Buchladen Linde"}


def test_preview_missing_value_names_it_and_fallback_fills_it(ws, templates, acc):
    person = contact(ws, acc, 2, name=None)
    templates.create(acc["account_id"], "hallo", "Hallo {first_name}, {{Aktion}} {code}!",
                     extra_placeholders=["code"])
    with pytest.raises(TemplateError) as err:
        templates.preview(acc["account_id"], "hallo", person["contact_id"], values={"code": "A1"})
    assert err.value.placeholder == "first_name"
    shown = templates.preview(acc["account_id"], "hallo", person["contact_id"],
                              values={"code": "A1"}, fallbacks={"first_name": "liebe Kundschaft"})
    assert shown.text == "Hallo liebe Kundschaft, {Aktion} A1!"
    without_contact = templates.preview(acc["account_id"], "hallo",
                                        values={"first_name": "Max", "code": 7})
    assert without_contact.text == "Hallo Max, {Aktion} 7!"


def test_buttons_and_header_in_the_preview(templates, acc):
    templates.create(acc["account_id"], "knopf", "Neu: {titel}", header="Für {first_name}",
                     buttons=[{"type": "url", "text": "Ansehen", "url": "https://l.example/b/{isbn}"},
                              {"type": "quick_reply", "text": "Stopp"}],
                     extra_placeholders=["titel", "isbn"])
    shown = templates.preview(acc["account_id"], "knopf",
                              values={"first_name": "Ida", "titel": "Momo", "isbn": "978"})
    assert shown.text == "Für Ida\n\nNeu: Momo\n\n[Ansehen: https://l.example/b/978] [Stopp]"


def test_delete_only_unused(ws, templates, acc):
    from broadcast_helpers import service

    made = templates.create(acc["account_id"], "weg", "Hallo")
    templates.delete(acc["account_id"], "weg")
    assert templates.list(acc["account_id"]).empty
    templates.create(acc["account_id"], "bleibt", "Hallo")
    service(ws).create(acc["account_id"], "Aktion", template="bleibt")
    with pytest.raises(Conflict):
        templates.delete(acc["account_id"], "bleibt")
    assert made["name"] == "weg"
    assert templates.list(acc["account_id"])["name"].tolist() == ["bleibt"]
    actions = ws.sql("SELECT action FROM audit_log WHERE action LIKE 'template.%' ORDER BY \"at\"")
    assert actions["action"].tolist() == ["template.create", "template.delete", "template.create"]


def test_cloud_payload_matches_the_documented_named_shape():
    sample = json.loads((FIXTURES / "cloud_api" / "send_template_named.json").read_text())["template"]
    template = {"name": "order_confirmation", "language": "en-US",
                "body": "Thank you, {first_name}! Your order number is {order_number}.",
                "header": None, "buttons": None}
    payload = tpl.cloud_payload(template, {"first_name": "Jessica",
                                           "order_number": "SKBUP2-4CPIG9"})
    assert payload == sample


def test_cloud_payload_header_and_url_button():
    template = {"name": "t", "language": "de", "header": "Hi {first_name}", "body": "Code {code}",
                "buttons": [{"type": "quick_reply", "text": "Stopp"},
                            {"type": "url", "text": "Go", "url": "https://x.example/{code}"}]}
    payload = tpl.cloud_payload(template, '{"first_name": "A", "code": "Z9"}')
    assert payload["components"] == [
        {"type": "header", "parameters": [{"type": "text", "parameter_name": "first_name",
                                           "text": "A"}]},
        {"type": "body", "parameters": [{"type": "text", "parameter_name": "code", "text": "Z9"}]},
        {"type": "button", "sub_type": "url", "index": "1",
         "parameters": [{"type": "text", "text": "Z9"}]}]


# --- the vectorised renderer agrees with the one renderer ------------------------------------

_names = st.sampled_from(["a", "b", "first_name", "x1"])
_literal = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6).map(
    lambda s: s.replace("{", "{{").replace("}", "}}"))
_template = st.lists(st.one_of(_literal, _names.map(lambda n: "{" + n + "}")), max_size=6).map("".join)
_value = st.one_of(st.none(), st.text(max_size=5), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=True, allow_infinity=False, width=32))


@settings(max_examples=150, deadline=None)
@given(text=_template, rows=st.lists(st.fixed_dictionaries({n: _value for n in ["a", "b",
                                                                                   "first_name",
                                                                                   "x1"]}),
                                     min_size=1, max_size=5),
       fallbacks=st.one_of(st.none(), st.dictionaries(_names, st.text(max_size=3), max_size=2)))
def test_render_frame_equals_render(text, rows, fallbacks):
    frame = pd.DataFrame(rows, dtype=object)
    texts, missing = tpl.render_frame(text, frame, fallbacks)
    for i, row in enumerate(rows):
        try:
            expected = render.render(text, row, missing=fallbacks or "error") if text else None
            lacking = None
        except TemplateError as exc:
            expected, lacking = None, exc.placeholder
        assert texts.iloc[i] == expected
        assert missing.iloc[i] == lacking


_attr_value = st.one_of(st.text(max_size=4), st.integers(-999, 999), st.booleans(), st.none(),
                        st.floats(allow_nan=False, allow_infinity=False, width=32),
                        st.lists(st.integers(), max_size=2))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=st.lists(st.fixed_dictionaries({
    "name": st.one_of(st.none(), st.text(max_size=12)),
    "attributes": st.dictionaries(st.sampled_from(["first_name", "name", "business_name", "stadt",
                                                   "punkte"]), _attr_value, max_size=4)}),
    min_size=1, max_size=6),
    business=st.one_of(st.none(), st.just("  "), st.just("Linde")))
def test_value_frame_equals_contact_values(people, business):
    names = ["first_name", "name", "business_name", "stadt", "punkte"]
    account_row = {"display_name": business}
    contacts = pd.DataFrame({"name": [p["name"] for p in people]}, dtype=object)
    attributes = pd.DataFrame({n: [json.dumps(p["attributes"][n]) if n in p["attributes"] else None
                                   for p in people] for n in names}, dtype=object)
    frame = tpl.value_frame(contacts, account_row, names, attributes)
    for i, person in enumerate(people):
        expected = render.contact_values(person, account_row)
        got = {k: v for k, v in frame.iloc[i].items() if v is not None}
        assert got == {k: v for k, v in expected.items() if k in names}
