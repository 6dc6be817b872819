"""Phone numbers: every written form of a number becomes one E.164 string.

Parsing and validation are phonenumbers' job (Google's libphonenumber metadata); this
module only fixes bizchat's policy around it: a default region for national forms,
``00`` as an international prefix, and the number type vocabulary of the schema.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

from ..errors import InvalidPhoneNumber

_TYPE_NAMES = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed_line",
    # Where the numbering plan cannot tell (US, CA ...): stored as such, treated as unknown.
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}

DEFAULT_REGION = "DE"


@dataclass(frozen=True)
class Phone:
    e164: str            # +491701234567
    number_type: str     # mobile, fixed_line, fixed_line_or_mobile, ...
    region: str | None   # DE

    @property
    def wa_id(self) -> str:
        """WhatsApp's id for a number: E.164 without the plus."""
        return self.e164[1:]


def parse(raw: str, default_region: str | None = DEFAULT_REGION) -> Phone:
    """Parse any common written form of a phone number; raise InvalidPhoneNumber if it is not one.

    ``0170 1234567`` (national, with ``default_region``), ``+49 (170) 123-4567``,
    ``0049 170 1234567`` and ``491701234567`` (a WhatsApp wa_id) all give +491701234567.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhoneNumber(f"{raw!r} is not a phone number: it is empty.", input=raw)
    text = raw.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("00"):
        text = "+" + text[2:]
    elif (not text.startswith(("+", "0")) and text == digits and len(digits) >= 10
          and _looks_international(digits)):
        # A bare digit string like a wa_id: international without the plus.
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(
            f"{raw!r} is not a phone number ({exc._msg}). Write it in international form, "
            "e.g. +49 170 1234567.", input=raw) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(
            f"{raw!r} is not a valid phone number for its region. Check the digits; national "
            f"forms are read for region {default_region}, otherwise start with + and the "
            "country code.", input=raw)
    kind = _TYPE_NAMES.get(phonenumbers.number_type(number), "unknown")
    return Phone(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        number_type=kind,
        region=phonenumbers.region_code_for_number(number),
    )


def _looks_international(digits: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False


def normalize(raw: str, default_region: str | None = DEFAULT_REGION) -> str:
    """The E.164 form of ``raw`` (see parse)."""
    return parse(raw, default_region).e164


def is_mobile_capable(phone: Phone) -> bool:
    """Whether the number type could be on WhatsApp (all but pagers and premium lines)."""
    return phone.number_type not in {"pager", "premium_rate", "shared_cost", "uan", "voicemail"}
