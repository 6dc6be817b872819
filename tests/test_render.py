"""The safe renderer: named placeholders only, clear errors, nothing ever evaluated."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bizchat.errors import TemplateError
from bizchat.messaging.render import contact_values, parse, placeholders, render, validate


def test_named_placeholders_and_literal_braces():
    text = "Hallo {first_name}, {{Gutschein}} bei {business_name}: {{{code}}}"
    values = {"first_name": "Anna", "business_name": "Blumen Berg", "code": "X1"}
    assert render(text, values) == "Hallo Anna, {Gutschein} bei Blumen Berg: {X1}"
    assert placeholders(text) == ["first_name", "business_name", "code"]


def test_placeholders_are_unique_in_order_of_first_use():
    assert placeholders("{b} {a} {b} {_x1}") == ["b", "a", "_x1"]
    assert placeholders("no placeholders, }} {{ only braces") == []


@pytest.mark.parametrize("text, piece, position, fragment", [
    ("Hi {first_name.upper}", "{first_name.upper}", 14, "attribute access"),
    ("Hi {name[0]}", "{name[0]}", 8, "index access"),
    ("Hi {name!r}", "{name!r}", 8, "conversion"),
    ("Hi {name:>20}", "{name:>20}", 8, "format spec"),
    ("Hi {name()}", "{name()}", 8, "call"),
    ("Hi {}", "{}", 3, "positional"),
    ("Hi {0}", "{0}", 3, "positional"),
    ("Hi {1st}", "{1st}", 3, "cannot start with a digit"),
    ("Hi { name }", "{ name }", 4, "spaces"),
    ("Hi {straße}", "{straße}", 8, "'ß'"),
    ("Hi {a{b}}", "{a{b}", 5, "nested"),
    ("Hi {name", "{name", 3, "never closed"),
    ("Hi name}", "}", 7, "single closing brace"),
    ("{__import__('os').system('true')}", "{__import__('os').system('true')}", 11, "a call"),
])
def test_unsafe_syntax_names_the_piece_and_position(text, piece, position, fragment):
    with pytest.raises(TemplateError) as err:
        render(text, {"name": "Anna", "first_name": "Anna"})
    assert err.value.piece == piece
    assert err.value.position == position
    assert fragment in str(err.value)
    assert f"character {position + 1}" in str(err.value)
    with pytest.raises(TemplateError):
        placeholders(text)  # validation up front finds the same problem


def test_position_on_later_lines_mentions_the_line():
    with pytest.raises(TemplateError) as err:
        parse("Hallo\n\n{x.y}")
    assert err.value.position == 9 and "line 3" in str(err.value)


def test_unknown_placeholder_is_named():
    with pytest.raises(TemplateError) as err:
        render("Hallo {frist_name}!", {"first_name": "Anna"})
    assert err.value.placeholder == "frist_name"
    assert "{frist_name}" in str(err.value) and "{first_name}" in str(err.value)


def test_none_and_nan_count_as_missing():
    for value in (None, float("nan")):
        with pytest.raises(TemplateError) as err:
            render("Hi {first_name}", {"first_name": value})
        assert err.value.placeholder == "first_name"


def test_missing_fallbacks_dict_and_callable():
    text = "Hallo {first_name}, Ihr Code: {code}"
    assert render(text, {"code": 7}, missing={"first_name": "Kundin, Kunde"}) == \
        "Hallo Kundin, Kunde, Ihr Code: 7"
    with pytest.raises(TemplateError) as err:  # no fallback for this name
        render(text, {"first_name": "Anna"}, missing={"first_name": "x"})
    assert err.value.placeholder == "code"
    seen = []
    assert render(text, {}, missing=lambda n: seen.append(n) or f"<{n}>") == \
        "Hallo <first_name>, Ihr Code: <code>"
    assert seen == ["first_name", "code"]
    with pytest.raises(TemplateError):  # a callable returning None means: no fallback
        render(text, {}, missing=lambda n: None)
    with pytest.raises(ValueError):
        render(text, {}, missing="ignore")


def test_value_types():
    values = {"a": 3, "b": 2.5, "c": 4.0, "d": Decimal("19.90"), "e": dt.date(2025, 3, 30),
              "f": "x"}
    assert render("{a} {b} {c} {d} {e} {f}", values) == "3 2.5 4 19.90 2025-03-30 x"
    for bad in ([1], {"k": 1}, object(), True):
        with pytest.raises(TemplateError) as err:
            render("{a}", {"a": bad})
        assert err.value.placeholder == "a"


def test_values_never_format_themselves():
    """An object in the values is refused before any of its methods could run."""
    calls = []

    class Sneaky:
        def __str__(self):
            calls.append("str")
            return "pwned"

        def __format__(self, spec):
            calls.append("format")
            return "pwned"

    with pytest.raises(TemplateError):
        render("{x}", {"x": Sneaky()})
    assert calls == []


def test_validate_against_known_names():
    assert validate("Hi {first_name}", known={"first_name"}) == ["first_name"]
    with pytest.raises(TemplateError) as err:
        validate("Hi {first_name} {vip}", known=["first_name"])
    assert err.value.placeholder == "vip"


def test_contact_values():
    contact = {"name": "  Anna  Maria Schmidt ", "phone_e164": "+491701234567",
               "attributes": '{"city": "Graz", "points": 12, "bad key": 1, "tags": ["a"], '
                             '"vip": true, "first_name": "Nope"}'}
    values = contact_values(contact, {"display_name": "Blumen Berg"})
    assert values == {"city": "Graz", "points": 12, "name": "Anna Maria Schmidt",
                      "first_name": "Anna", "business_name": "Blumen Berg"}
    assert "+491701234567" not in values.values()
    # Without a name, an attribute of the same name may fill in; rows may be Series.
    row = pd.Series({"name": None, "attributes": {"first_name": "Anni"}})
    assert contact_values(row, None) == {"first_name": "Anni"}
    assert render("Hallo {first_name}", contact_values(row)) == "Hallo Anni"


# --- properties --------------------------------------------------------------------------------

_alphabet = st.sampled_from(list("{}abc_019 .[]!:()'\"\\%$ß\n"))


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(), st.text(alphabet=_alphabet)),
       values=st.dictionaries(st.sampled_from(["a", "b", "_", "abc", "a1"]),
                              st.one_of(st.text(), st.integers(), st.none())))
def test_any_text_renders_or_raises_template_error(text, values):
    try:
        out = render(text, values)
    except TemplateError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
        return
    assert isinstance(out, str)
    # Without placeholders the output is the text with {{ and }} collapsed.
    if not placeholders(text):
        assert out == text.replace("{{", "{").replace("}}", "}")


@settings(max_examples=200, deadline=None)
@given(literal=st.text().map(lambda s: s.replace("{", "{{").replace("}", "}}")),
       value=st.text())
def test_round_trip_of_escaped_text(literal, value):
    """Escaped user text survives unchanged, and inserted values are never re-read."""
    text = literal + "{v}" + literal
    unescaped = literal.replace("{{", "{").replace("}}", "}")
    assert render(text, {"v": value}) == unescaped + value + unescaped
    # A value that looks like a template is inserted verbatim, not rendered again.
    assert render("{v}", {"v": "{__class__} {{x}}"}) == "{__class__} {{x}}"
