"""Skill results become chat text in the customer's language, quoting only the result."""

from __future__ import annotations

from typing import Any

import pytest

from clawdesk.skills.render import render
from schemas import KbHit, SkillResult, SkillStatus
from tests.llm.events import skill_result

REFUND_HIT = KbHit(
    doc_id="en/refunds.md", title="Refunds", section="How long", text="5 days", score=0.8
)


def result(
    skill: str | None,
    status: SkillStatus = SkillStatus.OK,
    data: dict[str, Any] | None = None,
    language: str = "en",
    message: str = "",
) -> SkillResult:
    """A refund conversation's skill result, as the reply stage would render it."""
    return skill_result(
        "…",
        intent="refund_request",
        language=language,
        hits=[REFUND_HIT],
        answerable=False,
        skill=skill,
        status=status,
        data=data,
        message=message,
    )


REFUND_FACTS = {"action": "refund", "order": "#1002", "amount": "313.90", "currency": "USD"}


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            "Shall I refund 313.90 USD for order #1002 to the original payment method? "
            "Reply yes to confirm, or no to cancel.",
        ),
        ("zh", "要为订单 #1002 退款 313.90 USD(原路退回)吗?回复“确认”或“是的”继续,回复“不”取消。"),
    ],
)
def test_refund_confirmation_question_quotes_order_and_amount(language: str, expected: str):
    data = {**REFUND_FACTS, "arguments": {"order": "1002"}}
    out = render(result("refund", SkillStatus.NEEDS_CONFIRMATION, data, language))
    assert out is not None and out.text == expected
    assert not out.handoff


def test_cancel_confirmation_lists_the_items():
    data = {"order": "#1004", "items": ["Desk lamp", "Bulb"], "amount": "298.00", "currency": "CNY"}
    out = render(result("cancel_order", SkillStatus.NEEDS_CONFIRMATION, data))
    assert out is not None
    assert out.text.startswith("Shall I cancel order #1004 (Desk lamp, Bulb, 298.00 CNY)?")


def test_plugin_confirmation_without_facts_quotes_its_description():
    out = render(
        result(
            "gift_card",
            SkillStatus.NEEDS_CONFIRMATION,
            {"arguments": {}},
            message="Send a €10 gift card?",
        )
    )
    assert out is not None and "Send a €10 gift card?" in out.text


@pytest.mark.parametrize(
    ("language", "needle"),
    [("en", "refund re_000001, status: succeeded"), ("zh", "退款单号 re_000001,状态:成功")],
)
def test_refund_done_quotes_the_refund(language: str, needle: str):
    data = {
        "order": "#1002",
        "refund_id": "re_000001",
        "amount": "313.90 USD",
        "status": "succeeded",
    }
    out = render(result("refund", SkillStatus.OK, data, language))
    assert out is not None and needle in out.text and "313.90 USD" in out.text
    assert out.sources == ["refund:re_000001"]


def test_dhl_tracking_with_location_and_date():
    data = {
        "carrier": "DHL",
        "tracking_number": "4817263950",
        "status": "transit",
        "description": "Arrived at destination hub",
        "location": "Sydney",
        "estimated_delivery": "2026-11-20T12:00:00+00:00",
        "source": "dhl",
    }
    out = render(result("track_shipment", SkillStatus.OK, data))
    assert out is not None
    assert out.text == (
        "Parcel 4817263950 (DHL): Arrived at destination hub in Sydney. "
        "Expected delivery: 2026-11-20."
    )


def test_shop_tracking_and_unshipped_orders():
    shop = {
        "order": "#1002",
        "carrier": "YunExpress",
        "tracking_number": "YT26",
        "status": "in_transit",
        "source": "shopify",
    }
    unshipped = {"order": "#1005", "shipped": False, "fulfillment_status": "unfulfilled"}
    a = render(result("track_shipment", SkillStatus.OK, shop, "zh"))
    b = render(result("track_shipment", SkillStatus.OK, unshipped))
    assert a is not None and "YunExpress" in a.text and "运输中" in a.text
    assert (
        b is not None and b.text == "Order #1005 hasn't shipped yet (fulfilment: not shipped yet)."
    )


def test_order_list_says_how_many_it_left_out():
    orders = [
        {"order": f"#10{i:02d}", "total": "1.00 EUR", "fulfillment_status": "fulfilled"}
        for i in range(2)
    ]
    out = render(result("order_list", SkillStatus.OK, {"orders": orders, "count": 7}))
    assert out is not None
    assert out.text == (
        "Your recent orders: #1000 (1.00 EUR, shipped); #1001 (1.00 EUR, "
        "shipped). (the 2 newest of 7)"
    )


def test_unknown_status_codes_are_shown_as_the_provider_gave_them():
    data = {
        "order": "#1",
        "financial_status": "on_hold_review",
        "fulfillment_status": "x",
        "total": "1 EUR",
    }
    out = render(result("order_status", SkillStatus.OK, data, "zh"))
    assert out is not None and "on hold review" in out.text


@pytest.mark.parametrize(
    ("skill", "language", "needle"),
    [
        ("refund", "en", "can't refund from here"),
        ("refund", "zh", "无法在这里办理退款"),
        ("track_shipment", "en", "can't track parcels"),
    ],
)
def test_unavailable_skill_says_so_and_offers_a_person(skill: str, language: str, needle: str):
    out = render(result(skill, SkillStatus.UNAVAILABLE, {}, language))
    assert out is not None and needle in out.text
    assert ("human" in out.text) or ("转人工" in out.text)
    assert out.with_kb


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (
            {"order": "#1007", "financial_status": "refunded"},
            "can't be refunded (payment status: refunded)",
        ),
        ({"order": "#1001", "refundable": "0.00"}, "at most 0.00"),
        ({"order": "#1002", "code": "charge_already_refunded"}, "already been refunded"),
        ({"error": "timeout"}, "couldn't refund just now"),
    ],
)
def test_refund_failures_say_why(data: dict[str, Any], needle: str):
    out = render(result("refund", SkillStatus.FAILED, data))
    assert out is not None and needle in out.text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"missing": "order"}, "Could you tell me your order number (for example #1001)?"),
        ({"missing": "order", "order": "latest"}, "I couldn't read the order number latest."),
        (
            {"missing": "email", "order": "#1002"},
            "To refund order #1002, please tell me the e-mail address",
        ),
    ],
)
def test_missing_input_is_asked_for(data: dict[str, Any], expected: str):
    out = render(result("refund", SkillStatus.NEEDS_INPUT, data))
    assert out is not None and out.text.startswith(expected)


@pytest.mark.parametrize(
    ("reason", "language", "needle"),
    [
        ("customer_request", "en", "I'm connecting you with a human agent"),
        ("negative_sentiment", "en", "I'm sorry about this."),
        ("low_confidence", "zh", "抱歉,我没能理解您的问题。正在为您转接人工客服"),
        ("manual_refund", "en", "A person needs to handle this."),
    ],
)
def test_handoff_notice_says_why(reason: str, language: str, needle: str):
    out = render(result("handoff", SkillStatus.OK, {"reason": reason}, language))
    assert out is not None and out.handoff and needle in out.text


def test_declined_and_expired_confirmations():
    declined = render(
        result("refund", SkillStatus.SKIPPED, {"dialogue": "declined", "order": "#1002"})
    )
    expired = render(
        result("cancel_order", SkillStatus.SKIPPED, {"dialogue": "expired", "order": "#1004"}, "zh")
    )
    assert declined is not None and declined.text == "OK, I won't refund order #1002."
    assert expired is not None and "已过期" in expired.text


def test_no_skill_renders_nothing():
    assert render(result(None, SkillStatus.SKIPPED)) is None
