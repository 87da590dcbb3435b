"""Language detection heuristic."""

from __future__ import annotations

import pytest

from clawdesk.nlu.language import detect_language, script_counts


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("where is my package?", "en"),
        ("I want a refund", "en"),
        ("我的快递到哪了", "zh"),
        ("退款", "zh"),
        ("我的order #1001还没到", "zh"),
        ("请帮我查一下 tracking number 1Z999AA10123456784", "zh"),
        ("iPhone 15 Pro 什么时候发货", "zh"),
        ("refund 退款", "zh"),
        ("Hi, my name is 王小明 and I need help with my refund", "en"),
        ("我的訂單還沒到", "zh"),  # traditional characters
        ("注文した商品がまだ届きません", "ja"),
        ("주문한 상품이 아직 도착하지 않았어요", "ko"),
        ("¿Dónde está mi pedido?", "es"),
        ("Où est ma commande ?", "fr"),
        ("Wo ist meine Bestellung?", "de"),
        ("Где мой заказ?", "ru"),
        ("OK", "en"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


@pytest.mark.parametrize("text", ["", "   ", "12345 !!!", "😀👍", "#1001 1Z999AA10123456784"])
def test_undetermined(text: str) -> None:
    assert detect_language(text) == "und"


def test_codes_do_not_count_as_words() -> None:
    counts = script_counts("订单 ORD-123 a@b.com https://x.io/abc")
    assert counts["han"] == 2
    assert counts["latin"] == 0


@pytest.mark.parametrize(
    "text", ["订单1004发出来了吗", "订单号1003", "1002的快递到了吗?", "我要退订单1012的款"]
)
def test_chinese_with_an_order_number_is_chinese(text: str) -> None:
    # Chinese has no spaces: a code pattern of "any run with a digit" erased the sentence.
    assert detect_language(text) == "zh"


def test_the_reply_language_falls_back_to_the_conversations() -> None:
    from clawdesk.nlu.language import reply_language

    assert reply_language("1005", "zh") == "zh"
    assert reply_language("ok thanks", "zh") == "zh"
    assert reply_language("I would like to ask about shipping instead", "zh") == "en"
    assert reply_language("1002", None, ["hi there", "my order"]) == "en"
    assert reply_language("1002") == "und"
