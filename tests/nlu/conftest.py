"""Shared tiny data sets for the NLU tests."""

from __future__ import annotations

import os

import pytest

# Tests must never try to reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_DATA = {
    "refund": [
        "I want a refund",
        "please give me my money back",
        "can I get a refund for this order",
        "refund my purchase",
        "我要退款",
        "请给我退钱",
        "这个订单能退款吗",
        "申请退款",
    ],
    "order_status": [
        "where is my order",
        "has my package shipped yet",
        "when will my order arrive",
        "track my parcel",
        "我的快递到哪了",
        "订单什么时候到",
        "包裹发货了吗",
        "查一下物流",
    ],
    "change_address": [
        "I need to change my shipping address",
        "update the delivery address",
        "wrong address on my order",
        "ship it to a different address",
        "我要改收货地址",
        "修改配送地址",
        "地址填错了",
        "换一个收货地址",
    ],
}


def _examples(rows: dict[str, list[str]]) -> list:
    from clawdesk.nlu.training.examples import IntentExample

    return [IntentExample(text=t, intent=i) for i, texts in rows.items() for t in texts]


@pytest.fixture(scope="session")
def tiny_train() -> list:
    return _examples(_DATA)


@pytest.fixture(scope="session")
def tiny_valid() -> list:
    rows = {
        "refund": ["money back please", "退款怎么申请"],
        "order_status": ["where's my package", "我的订单到哪了"],
        "change_address": ["change the address", "收货地址要改"],
        "oos": ["what's the weather tomorrow", "讲个笑话", "who won the football game"],
    }
    return _examples(rows)
