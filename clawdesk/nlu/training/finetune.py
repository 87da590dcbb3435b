"""Contrastive fine-tuning of the sentence encoder on a tenant's labelled examples.

Each batch holds a few intents with a few examples each; the loss is the supervised
contrastive loss (Khosla et al. 2020).  Settings: :class:`clawdesk.nlu.config.FinetuneConfig`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clawdesk.nlu.config import FinetuneConfig
from clawdesk.nlu.encoder import TextEncoder

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["auto_epochs", "finetune_encoder", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that training runs repeat."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _bf16_supported() -> bool:
    # bf16 autocast roughly doubles CPU training speed where the CPU has native bf16
    # (AVX512-BF16/AMX); elsewhere it is emulated and slower, so only use it when native.
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - depends on the torch build
        return False


def auto_epochs(n_examples: int) -> float:
    """Fine-tuning epochs for a training set of ``n_examples`` (chosen on validation
    splits of BANKING77 and CLINC150)."""
    if n_examples <= 3000:
        return 5.0
    return 1.0


def finetune_encoder(
    encoder: TextEncoder,
    texts: Sequence[str],
    labels: Sequence[str],
    config: FinetuneConfig | None = None,
    *,
    progress: Progress | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Contrastively fine-tune ``encoder`` in place on labelled texts; returns training stats.

    Intents with a single example still serve as negatives but cannot be anchors.
    ``on_epoch_end(epoch)`` is called after each pass (in eval mode), e.g. to look at
    validation accuracy while experimenting.
    """
    import torch
    import torch.nn.functional as F

    cfg = config or FinetuneConfig()
    seed_everything(cfg.seed)
    rng = random.Random(cfg.seed)
    by_label: dict[str, list[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        by_label.setdefault(label, []).append(text)
    if len(by_label) < 2:
        raise ValueError("contrastive fine-tuning needs at least two intents")

    steps_per_epoch = max(1, len(_plan_batches(by_label, cfg, rng)))
    epochs = cfg.epochs if cfg.epochs is not None else auto_epochs(len(texts))
    total = math.ceil(steps_per_epoch * epochs)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    use_bf16 = _bf16_supported() if cfg.bf16 is None else cfg.bf16

    model = encoder.model
    if cfg.freeze_word_embeddings:
        for module in model.modules():
            emb = getattr(module, "word_embeddings", None)
            if isinstance(emb, torch.nn.Embedding):
                emb.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, int(cfg.warmup_ratio * total))

    def lr_lambda(step: int) -> float:
        # linear warm-up, then linear decay to zero
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    task = progress.add_task("fine-tuning encoder", total=total) if progress else None
    model.train()
    losses: list[float] = []
    step = epoch = 0
    try:
        while step < total:
            for batch in _plan_batches(by_label, cfg, rng):
                if step >= total:
                    break
                batch_texts = [t for group in batch for t in group]
                ids = torch.tensor([i for i, group in enumerate(batch) for _ in group])
                features = model.preprocess(batch_texts)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                    emb = model(features)["sentence_embedding"]
                loss = _supcon_loss(F.normalize(emb.float(), dim=-1), ids, cfg.temperature)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                step += 1
                if progress is not None and task is not None:
                    progress.update(
                        task,
                        advance=1,
                        description=f"fine-tuning (loss {np.mean(losses[-20:]):.3f})",
                    )
            epoch += 1
            if on_epoch_end is not None:
                model.eval()
                on_epoch_end(epoch)
                model.train()
    finally:
        model.eval()
        if progress is not None and task is not None:
            progress.remove_task(task)
    encoder.finetuned = True
    return {
        "epochs": float(epochs),
        "steps": float(step),
        "first_loss": float(np.mean(losses[:10])) if losses else float("nan"),
        "last_loss": float(np.mean(losses[-10:])) if losses else float("nan"),
        "bf16": float(use_bf16),
    }


def _plan_batches(
    by_label: dict[str, list[str]], cfg: FinetuneConfig, rng: random.Random
) -> list[list[list[str]]]:
    """One epoch of batches: groups of ``per_class`` same-intent texts, distinct intents.

    Every example appears in about one group per epoch; classes with more examples give
    more groups, as plain sampling would.
    """
    k = max(2, cfg.per_class)
    groups: list[tuple[str, list[str]]] = []
    for label, items in by_label.items():
        if len(items) < 2:
            continue
        shuffled = rng.sample(items, len(items))
        # Round up so that every example is used; pad the last group from the start.
        for i in range(0, len(shuffled), k):
            group = shuffled[i : i + k]
            if len(group) < k:
                group = group + shuffled[: k - len(group)]
            groups.append((label, group))
    rng.shuffle(groups)
    batches: list[list[list[str]]] = []
    pending = groups
    per_batch = max(2, cfg.classes_per_batch)
    # Greedy packing: a batch takes each intent at most once.
    while pending:
        batch: list[list[str]] = []
        seen: set[str] = set()
        rest: list[tuple[str, list[str]]] = []
        for label, group in pending:
            if len(batch) < per_batch and label not in seen:
                batch.append(group)
                seen.add(label)
            else:
                rest.append((label, group))
        if len(batch) < 2:
            # Leftover groups of one single intent cannot form a contrastive batch.
            break
        batches.append(batch)
        pending = rest
    return batches


def _supcon_loss(emb: Any, ids: Any, temperature: float) -> Any:
    """Supervised contrastive loss for unit vectors ``emb`` with integer class ``ids``."""
    import torch

    n = emb.shape[0]
    sim = emb @ emb.T / temperature
    eye = torch.eye(n, dtype=torch.bool)
    sim = sim.masked_fill(eye, float("-inf"))
    positives = (ids[:, None] == ids[None, :]) & ~eye
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    log_prob = log_prob.masked_fill(eye, 0.0)
    per_anchor = -(log_prob * positives).sum(1) / positives.sum(1).clamp(min=1)
    has_pos = positives.any(1)
    return per_anchor[has_pos].mean()
