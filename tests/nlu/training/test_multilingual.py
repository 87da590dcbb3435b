"""Whether training adds the multilingual block: by the share of non-English texts."""

from __future__ import annotations

import pytest

from clawdesk.nlu.multilingual import AUTO, MULTILINGUAL_E5
from clawdesk.nlu.training.multilingual import non_english_share, resolve_multilingual

ENGLISH = [f"how do I top up my card number {i}" for i in range(97)]


def test_auto_adds_the_block_only_when_the_training_texts_are_not_all_english() -> None:
    assert resolve_multilingual(AUTO, ENGLISH) == ""
    # Up to 5 % other-language texts (a name, a stray phrase) keep an English file English.
    five_percent = [*ENGLISH[:95], "我要退款", "订单到哪了", "ok", "1001", "thanks"]
    assert non_english_share(five_percent) == pytest.approx(0.02)
    assert resolve_multilingual(AUTO, five_percent) == ""
    mixed = ENGLISH[:90] + ["我要退款"] * 10
    assert resolve_multilingual(AUTO, mixed) == MULTILINGUAL_E5
    # An explicit setting is kept as it is, "" (off) included.
    assert resolve_multilingual("", mixed) == ""
    assert resolve_multilingual("some/model", ENGLISH) == "some/model"
    assert non_english_share([]) == 0.0
