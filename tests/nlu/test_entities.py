"""Entity extraction: valid forms are found with the right value and span, invalid ones
are not."""

from __future__ import annotations

import pytest

from clawdesk.nlu.entities import (
    dhl_check_digit,
    extract_entities,
    fold_width,
    s10_check_digit,
    ups_check_digit,
)


def _found(text: str, kind: str) -> list[tuple[str, str]]:
    """(value, surface) pairs of one kind."""
    return [(e.value, text[e.start : e.end]) for e in extract_entities(text) if e.kind == kind]


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("my order #1001 hasn't arrived", "1001", "#1001"),
        ("order number is ORD-123456", "ORD-123456", "ORD-123456"),
        ("ord-55501 was wrong", "ORD-55501", "ord-55501"),
        ("I placed order 1001 yesterday", "1001", "1001"),
        ("Order No. 55012 please", "55012", "55012"),
        ("order id: A-20931-", "A-20931", "A-20931"),
        ("order #1001", "1001", "#1001"),
        ("订单号 1001 还没发货", "1001", "1001"),
        ("订单号1001已发货", "1001", "1001"),
        ("订单号：１００１", "1001", "１００１"),  # full-width digits from a Chinese IME
        ("我的订单编号是 A-20931，谢谢", "A-20931", "A-20931"),
        ("订单 13812345678", "13812345678", "13812345678"),  # keyword beats phone
    ],
)
def test_order_numbers(text: str, value: str, surface: str) -> None:
    assert _found(text, "order_number") == [(value, surface)]


@pytest.mark.parametrize(
    "text",
    [
        "I want to order 2 items",
        "order is pending",
        "the #12 bus",
        "ordered 10 pcs",
        "issue#1001abc",
        "订单已发货",
    ],
)
def test_not_order_numbers(text: str) -> None:
    assert _found(text, "order_number") == []


@pytest.mark.parametrize(
    ("text", "value", "carrier"),
    [
        ("UPS says 1Z999AA10123456784 is late", "1Z999AA10123456784", "ups"),
        ("1z999aa10123456784", "1Z999AA10123456784", "ups"),
        ("tracking 1Z12345E6605272234", "1Z12345E6605272234", "ups"),
        ("EMS AA473124829GB arrived", "AA473124829GB", "upu_s10"),
        ("包裹 RR123456785CN 到哪了", "RR123456785CN", "upu_s10"),
        ("dhl tracking 1234567891", "1234567891", "dhl"),
        ("快递单号 1234567891", "1234567891", "dhl"),
    ],
)
def test_tracking_numbers(text: str, value: str, carrier: str) -> None:
    ents = [e for e in extract_entities(text) if e.kind == "tracking_number"]
    assert [(e.value, e.attrs["carrier"]) for e in ents] == [(value, carrier)]


@pytest.mark.parametrize(
    "text",
    [
        "1Z999AA10123456785",  # UPS check digit wrong
        "1Z999AA1012345678",  # too short
        "AA473124828GB",  # S10 check digit wrong
        "AA47312482GB",  # S10 too short
        "1234567891",  # DHL-valid digits but no carrier/tracking context
        "X1Z999AA10123456784",  # glued to other characters
    ],
)
def test_not_tracking_numbers(text: str) -> None:
    assert _found(text, "tracking_number") == []


def test_check_digits() -> None:
    assert ups_check_digit("999AA1012345678") == 4
    assert s10_check_digit("47312482") == 9
    # S10 special cases: a computed 10 becomes 0 and 11 becomes 5
    assert s10_check_digit("00000000") == 5
    assert dhl_check_digit("123456789") == 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("mail me at li.wei@Example.COM please", "li.wei@example.com"),
        ("邮箱abc+cs@shop.co.uk谢谢", "abc+cs@shop.co.uk"),
        ("<john_doe@mail.example.org>", "john_doe@mail.example.org"),
    ],
)
def test_emails(text: str, value: str) -> None:
    assert [v for v, _ in _found(text, "email")] == [value]


@pytest.mark.parametrize(
    "text",
    ["a..b@example.com", "user@-bad.com", "user@example", "@example.com", "user@exa_mple.com"],
)
def test_not_emails(text: str) -> None:
    assert _found(text, "email") == []


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("call +14155552671", "+14155552671", "+14155552671"),
        ("call me at +1 (415) 555-2671 ok", "+14155552671", "+1 (415) 555-2671"),
        ("+86 138 1234 5678", "+8613812345678", "+86 138 1234 5678"),
        ("电话13812345678谢谢", "+8613812345678", "13812345678"),
        ("手机 138-1234-5678", "+8613812345678", "138-1234-5678"),
        ("+44 20 7946 0958", "+442079460958", "+44 20 7946 0958"),
    ],
)
def test_phones(text: str, value: str, surface: str) -> None:
    assert _found(text, "phone") == [(value, surface)]


@pytest.mark.parametrize(
    "text",
    [
        "12812345678",  # 12x is not a Chinese mobile prefix
        "138123456789",  # 12 digits
        "1381234567",  # 10 digits
        "+0123456789",  # E.164 country codes do not start with 0
        "+1234",  # too short
        "SF13812345678",  # part of an ID
    ],
)
def test_not_phones(text: str) -> None:
    assert _found(text, "phone") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("it cost $12.50", "12.50 USD"),
        ("¥99 only", "99 CNY"),
        ("￥99", "99 CNY"),
        ("退我 12.5 元", "12.5 CNY"),
        ("99块钱", "99 CNY"),
        ("€3 fee", "3 EUR"),
        ("£5", "5 GBP"),
        ("1,299.00 USD", "1299.00 USD"),
        ("USD 20", "20 USD"),
        ("20 dollars", "20 USD"),
        ("HK$100", "100 HKD"),
        ("100美元", "100 USD"),
    ],
)
def test_money(text: str, value: str) -> None:
    assert [v for v, _ in _found(text, "money")] == [value]


@pytest.mark.parametrize(
    "text",
    ["$12.505", "$1,2345", "12.5", "100 dollarsigns", "1.5.2 元"],
)
def test_not_money(text: str) -> None:
    assert _found(text, "money") == []


def test_money_attrs() -> None:
    (ent,) = extract_entities("refund ¥1,299.5 please")
    assert ent.attrs == {"currency": "CNY", "amount": "1299.5"}


def test_mixed_message_spans_and_order() -> None:
    text = "订单号 1001，运单 1Z999AA10123456784，退 ¥99 到 li@x.cn 或 13812345678"
    ents = extract_entities(text)
    assert [e.kind for e in ents] == [
        "order_number",
        "tracking_number",
        "money",
        "email",
        "phone",
    ]
    for e in ents:
        assert 0 <= e.start < e.end <= len(text)
    assert [e.start for e in ents] == sorted(e.start for e in ents)


def test_kinds_filter_and_empty() -> None:
    assert extract_entities("") == []
    text = "order 1001 costs $5"
    assert [e.kind for e in extract_entities(text, kinds=("money",))] == ["money"]


def test_fold_width_keeps_length() -> None:
    text = "订单号：１００１　ＯＲＤ"
    folded = fold_width(text)
    assert len(folded) == len(text)
    assert folded == "订单号:1001 ORD"


@pytest.mark.parametrize(
    ("text", "value", "carrier"),
    [
        ("Can you track YT2631100012345678 for me?", "YT2631100012345678", "yunexpress"),
        ("运单号SF1512345678901,现在什么状态", "SF1512345678901", "sf_express"),
        ("4px3001234567890cn 到哪了", "4PX3001234567890CN", "4px"),
        ("PostNL 3SCLAW0012345678", "3SCLAW0012345678", "postnl"),
        # No carrier format: the tracking word before it makes it one (a DHL number
        # whose check digit is wrong is still what the customer calls their waybill).
        ("dhl tracking 1234567890", "1234567890", None),
        ("my tracking number is 15502123456789", "15502123456789", None),
        ("快递单号 7312345678901 查一下", "7312345678901", None),
    ],
)
def test_carrier_formats_and_numbers_after_a_tracking_word(
    text: str, value: str, carrier: str | None
) -> None:
    found = [e for e in extract_entities(text) if e.kind == "tracking_number"]
    assert [(e.value, e.attrs.get("carrier")) for e in found] == [(value, carrier)]


@pytest.mark.parametrize("text", ["order 15502123456789", "call me on 13812345678", "SF123"])
def test_codes_without_a_carrier_format_or_tracking_word_are_not_parcels(text: str) -> None:
    assert [e for e in extract_entities(text) if e.kind == "tracking_number"] == []
