"""The model's recorded config: fine-tuning settings parsed from the command line."""

from __future__ import annotations

import dataclasses

import pytest

from clawdesk.nlu.config import ClassifierConfig, FinetuneConfig


def test_finetune_settings_parse_by_field_type() -> None:
    base = FinetuneConfig(epochs=3.0)
    cfg = base.with_settings(
        ["lr=1e-4", "per-class=3", "freeze_word_embeddings=false", "epochs=none", "bf16=yes"]
    )
    assert (cfg.lr, cfg.per_class, cfg.freeze_word_embeddings) == (1e-4, 3, False)
    assert cfg.epochs is None and cfg.bf16 is True
    assert isinstance(cfg.per_class, int)
    assert base.lr == 5e-5 and base.epochs == 3.0  # a copy; the original is untouched
    assert base.with_settings([]) == base


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("lr", "not KEY=VALUE"),
        ("=1", "not KEY=VALUE"),
        ("learning_rate=1e-4", "known: bf16"),
        ("lr=fast", "valid number"),
        ("per_class=2.5", "valid integer"),
        ("freeze_word_embeddings=maybe", "valid boolean"),
        ("lr=nan", ">= 0"),
        ("epochs=-1", ">= 0"),
        ("lr=none", "valid number"),  # only optional fields can be cleared
    ],
)
def test_finetune_settings_refuse_bad_input(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FinetuneConfig().with_settings([setting])


def test_config_round_trip() -> None:
    cfg = ClassifierConfig(features="embedding", C=3.0, ngram_range=(1, 3))
    cfg.finetune_config = dataclasses.replace(cfg.finetune_config, epochs=2.5)
    again = ClassifierConfig.from_dict({**cfg.to_dict(), "unknown_future_key": 1})
    assert again == cfg
