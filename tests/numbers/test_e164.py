"""Every form a user or a carrier writes resolves to one E.164 string."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from numberplane.kernel import e164

SAME = [
    ("+14155550100", None),
    ("+1 (415) 555-0100", None),
    ("14155550100", None),
    ("4155550100", None),
    ("(415) 555-0100", "US"),
    ("415.555.0100", "US"),
    ("001 415 555 0100", None),
    ("sip:+14155550100@pbx.example.com;user=phone", None),
    ("sip:14155550100@pbx.example.com", None),
    ("sips:+14155550100@pbx.example.com:5061", None),
    ("tel:+1-415-555-0100", None),
    ("  +14155550100  ", None),
    (14155550100, None),
]


@pytest.mark.parametrize(("value", "hint"), SAME)
def test_forms_of_one_number(value: object, hint: str | None) -> None:
    parsed = e164.parse(value, country_hint=hint)
    assert parsed.e164 == "+14155550100"
    assert parsed.country == "US" and parsed.area_code == "415"
    assert parsed.pretty == "+1 (415) 555-0100"


def test_international_and_hints() -> None:
    assert e164.to_e164("020 7946 0123", country_hint="GB") == "+442079460123"
    assert e164.to_e164("442079460123") == "+442079460123"
    assert e164.to_e164("00442079460123") == "+442079460123"
    assert e164.parse("+442079460123").area_code == "20"
    assert e164.parse("+18005550100").number_type == "toll_free"


@pytest.mark.parametrize(
    "bad", ["", "   ", "abc", "+1415", "555", "+999123456789", None, True, "1" * 80, 3.5]
)
def test_invalid_numbers_say_why(bad: object) -> None:
    with pytest.raises(e164.InvalidPhoneNumber) as info:
        e164.parse(bad)
    assert info.value.reason


def test_normalize_address_never_raises() -> None:
    assert e164.normalize_address("anonymous") is None
    assert e164.normalize_address(None) is None
    assert e164.normalize_address("sip:+14155550100@x.example.com") == "+14155550100"


@pytest.mark.parametrize("region", ["US", "GB", "DE", "FR", "IT", "AU", "JP", "BR", "IN", "NG", "MX", "SG"])
@pytest.mark.parametrize("kind", ["FIXED_LINE", "MOBILE", "TOLL_FREE"])
def test_a_carriers_e164_reads_as_the_full_parse_does(region: str, kind: str) -> None:
    """The data plane's cheap read of an E.164 address gives what the full parse gives, for every
    example number phonenumbers knows (Italy's leading zero included)."""
    import phonenumbers

    example = phonenumbers.example_number_for_type(region, getattr(phonenumbers.PhoneNumberType, kind))
    if example is None:
        pytest.skip(f"no {kind} example for {region}")
    text = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert e164.normalize_address(text) == e164.parse(text).e164 == text


def test_a_carriers_e164_keeps_a_number_our_metadata_does_not_know() -> None:
    # A national prefix dialled after the country code is dropped, as the full parse drops it.
    assert e164.normalize_address("+4402079460000") == "+442079460000"
    # A number in a range our metadata calls invalid keeps its caller ID on the data plane
    # (a carrier's metadata is newer than ours); a person typing it still gets the error.
    assert e164.normalize_address("+15555550123") == "+15555550123"
    # The same number as a SIP platform sends it reads the same way (no longer the full parse).
    assert e164.normalize_address("sip:+15555550123@pbx.example.com;user=phone") == "+15555550123"
    assert e164.normalize_address("tel:+15555550123") == "+15555550123"
    assert e164.normalize_address("sip:+4402079460000@pbx.example.com") == "+442079460000"
    assert e164.normalize_address("sip:+1415555@pbx.example.com") is None
    with pytest.raises(e164.InvalidPhoneNumber):
        e164.parse("+15555550123")
    # Too short or too long for its country is still not a number.
    assert e164.normalize_address("+1415555") is None
    assert e164.normalize_address("+4420794600001234") is None


def _full_read(text: str) -> str | None:
    """The data plane's read of an E.164 address done the long way: the full parse."""
    try:
        num = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@settings(max_examples=3000, deadline=None)
@given(code=st.sampled_from(_CODES), national=st.from_regex(r"[0-9]{1,14}", fullmatch=True))
@example(code=44, national="02079460000")  # a national prefix after the country code
@example(code=39, national="0612345678")  # Italy's leading zero
@example(code=1, national="4155550100")
@example(code=1, national="14155550100")  # NANP's national prefix, dialled after +1
@example(code=7, national="89123456789")  # Russia's trunk prefix 8
@example(code=800, national="12345678")  # a non-geographic code
def test_the_quick_split_of_an_e164_address_reads_as_the_full_parse(code: int, national: str) -> None:
    """``_split_e164`` (the data plane's read of a carrier's caller) gives what the full parse
    gives, for every calling code phonenumbers knows: the same country code and national number
    where it splits, and in the end the same E.164 string or None."""
    text = f"+{code}{national}"
    assume(e164._E164_SHAPE.fullmatch(text))  # the shape normalize_address reads this way
    split = e164._split_e164(text)
    if split is not None:
        full = phonenumbers.parse(text, None)
        assert (split.country_code, split.national_number) == (full.country_code, full.national_number)
        assert not full.italian_leading_zero
    e164._address.cache_clear()
    assert e164._address(text) == _full_read(text)
