"""Phone normalisation: every written form of a DE/AT/CH number is one contact."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bizchat
from bizchat.errors import InvalidPhoneNumber
from bizchat.people import phones
from bizchat.people.accounts import get_account
from bizchat.people.contacts import find_contact

TYPES = {"mobile": phonenumbers.PhoneNumberType.MOBILE,
         "fixed_line": phonenumbers.PhoneNumberType.FIXED_LINE}
# One business number per region, so national forms are read in that region.
BUSINESS = {"DE": "+49 30 901820", "AT": "+43 1 5320000", "CH": "+41 44 668 18 00"}


@st.composite
def valid_numbers(draw):
    """A valid mobile or landline number of DE, AT or CH: the region's example number
    with its last digits redrawn (they carry no meaning), kept if still valid and typed."""
    region = draw(st.sampled_from(sorted(BUSINESS)))
    kind = draw(st.sampled_from(sorted(TYPES)))
    example = phonenumbers.example_number_for_type(region, TYPES[kind])
    nsn = phonenumbers.national_significant_number(example)
    tail = draw(st.text("0123456789", min_size=4, max_size=4))
    number = phonenumbers.parse(f"+{example.country_code}{nsn[:-4]}{tail}", None)
    valid = (phonenumbers.is_valid_number(number)
             and phonenumbers.number_type(number) == TYPES[kind])
    if not valid:
        number = example
    return region, kind, number


def written_forms(number: phonenumbers.PhoneNumber) -> list[str]:
    cc = number.country_code
    nsn = phonenumbers.national_significant_number(number)
    return [
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),  # 030 123456
        f"+{cc} ({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}",                                      # +49 (301) 234-56
        f"00{cc} {nsn[:3]} {nsn[3:]}",                                                  # 0049 301 23456
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        f"{cc}{nsn}",                                                                  # a wa_id
        f"  +{cc}{nsn}  ",
    ]


@given(valid_numbers())
@settings(max_examples=150, deadline=None)
def test_every_written_form_parses_to_one_e164(case):
    region, kind, number = case
    expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    for form in written_forms(number):
        phone = phones.parse(form, region)
        assert phone.e164 == expected, form
        assert phone.number_type == kind
        assert phone.region == region


@pytest.fixture(scope="module")
def shops(tmp_path_factory):
    """One workspace for all examples, with a business account per region."""
    ws = bizchat.open(tmp_path_factory.mktemp("phones") / "phones.duckdb")
    return ws, {region: ws.accounts.add(number, name=f"Shop {region}")["account_id"]
                for region, number in BUSINESS.items()}


@pytest.mark.slow
@given(valid_numbers())
@settings(max_examples=25, deadline=None)
def test_every_written_form_is_one_contact(shops, case):
    ws, accounts = shops
    region, _, number = case
    account_id = accounts[region]
    forms = written_forms(number)
    # National forms are read in the account's region (here the number's own).
    contact = ws.contacts.find(account_id, forms[0]) or ws.contacts.add(account_id, forms[0])
    with ws.connect() as con:  # one connection for all lookups keeps the test quick
        account = get_account(con, account_id)
        for form in forms[1:]:
            assert find_contact(con, account, form)["contact_id"] == contact["contact_id"]
    with pytest.raises(bizchat.errors.Conflict):
        ws.contacts.add(account_id, forms[1])
    assert contact["wa_id"] == contact["phone_e164"][1:]


@pytest.mark.parametrize("raw", ["", "   ", "12345", "0170", "+49 1", "abc", "+999 123456789",
                                 "0049 (0) 30", "+49 30 12345678901234", "110"])
def test_invalid_input_raises_invalid_phone_number_naming_it(raw):
    with pytest.raises(InvalidPhoneNumber) as info:
        phones.parse(raw, "DE")
    assert info.value.input == raw
    assert repr(raw) in str(info.value)
    assert isinstance(info.value, ValueError)


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_text_is_a_valid_number_or_invalid_phone_number(text):
    try:
        phone = phones.parse(text, "DE")
    except InvalidPhoneNumber as exc:
        assert exc.input == text
    else:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone.e164, None))


@given(st.text("0123456789", min_size=1, max_size=3))
def test_short_digit_strings_are_never_numbers(digits):
    with pytest.raises(InvalidPhoneNumber):
        phones.parse(digits, "DE")


def test_national_form_depends_on_the_account_region(ws):
    vienna = ws.accounts.add("+43 1 5320000", name="Wien", timezone="Europe/Vienna")
    berlin = ws.accounts.add("+49 30 901820", name="Berlin")
    at = ws.contacts.add(vienna["account_id"], "0664 1234567")
    de = ws.contacts.add(berlin["account_id"], "0170 1234567")
    assert at["phone_e164"] == "+436641234567"
    assert de["phone_e164"] == "+491701234567"
