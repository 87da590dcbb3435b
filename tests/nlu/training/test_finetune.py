"""Contrastive fine-tuning: batch planning, the loss, the epoch rule."""

from __future__ import annotations

import random

from clawdesk.nlu.config import FinetuneConfig
from clawdesk.nlu.training.finetune import _plan_batches, _supcon_loss, auto_epochs


def test_plan_batches_distinct_intents_and_coverage() -> None:
    by_label = {f"i{k}": [f"t{k}_{j}" for j in range(5)] for k in range(7)}
    by_label["single"] = ["lonely"]
    cfg = FinetuneConfig(classes_per_batch=4, per_class=2)
    batches = _plan_batches(by_label, cfg, random.Random(0))
    seen: set[str] = set()
    for batch in batches:
        labels = [group[0].split("_")[0] for group in batch]
        assert len(labels) == len(set(labels))  # one group per intent per batch
        assert 2 <= len(batch) <= 4
        assert all(len(group) == 2 for group in batch)
        seen.update(t for group in batch for t in group)
    assert "lonely" not in seen  # one example cannot be its own positive
    assert len(seen) >= 7 * 5 - 2  # (nearly) every example used once per epoch


def test_supcon_loss_prefers_clustered_embeddings() -> None:
    import torch

    ids = torch.tensor([0, 0, 1, 1])
    good = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]]), dim=-1
    )
    bad = good[[0, 2, 1, 3]]
    assert float(_supcon_loss(good, ids, 0.1)) < float(_supcon_loss(bad, ids, 0.1))


def test_auto_epochs() -> None:
    assert auto_epochs(770) == 5.0
    assert auto_epochs(15000) == 1.0
