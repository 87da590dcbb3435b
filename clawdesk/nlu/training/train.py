"""Training a classifier from example files (:mod:`clawdesk.nlu.training.examples`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.training.examples import load_examples
from clawdesk.nlu.training.fit import fit_intent_model

__all__ = ["make_progress", "train_from_files"]


@contextlib.contextmanager
def make_progress(enabled: bool = True) -> Iterator[Any]:
    """A ``rich`` progress display for long encoding/fine-tuning, or ``None`` if disabled."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        yield progress


def train_from_files(
    train_path: str | Path,
    valid_path: str | Path | None = None,
    *,
    config: ClassifierConfig | None = None,
    progress: bool = True,
) -> IntentClassifier:
    """Train a classifier on a file, calibrating its oos threshold on ``valid_path``."""
    train = load_examples(train_path)
    valid = load_examples(valid_path) if valid_path is not None else None
    t0 = time.perf_counter()
    with make_progress(progress) as prog:
        clf = fit_intent_model(train, config, valid=valid, progress=prog)
    clf.info["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return clf
