"""Intent NLU for clawdesk: intent classification with out-of-scope rejection, entity
extraction and language detection, for Chinese and English customer messages.

Light parts (entities, language) import instantly; the classifier parts pull in torch and
sentence-transformers, so they are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clawdesk.nlu.entities import Entity, extract_entities
from clawdesk.nlu.language import detect_language

if TYPE_CHECKING:
    from clawdesk.nlu.model import (
        OOS,
        ClassifierConfig,
        IntentClassifier,
        IntentExample,
        IntentPrediction,
    )
    from clawdesk.nlu.training.evaluate import EvalReport, evaluate, run_intent_eval
    from clawdesk.nlu.training.train import load_examples
    from clawdesk.nlu.versions import list_versions, load_model, save_model

__all__ = [
    "OOS",
    "ClassifierConfig",
    "Entity",
    "EvalReport",
    "IntentClassifier",
    "IntentExample",
    "IntentPrediction",
    "detect_language",
    "evaluate",
    "extract_entities",
    "list_versions",
    "load_examples",
    "load_model",
    "run_intent_eval",
    "save_model",
]

_LAZY = {
    "OOS": "clawdesk.nlu.model",
    "ClassifierConfig": "clawdesk.nlu.model",
    "IntentClassifier": "clawdesk.nlu.model",
    "IntentExample": "clawdesk.nlu.model",
    "IntentPrediction": "clawdesk.nlu.model",
    "EvalReport": "clawdesk.nlu.training.evaluate",
    "evaluate": "clawdesk.nlu.training.evaluate",
    "run_intent_eval": "clawdesk.nlu.training.evaluate",
    "list_versions": "clawdesk.nlu.versions",
    "load_model": "clawdesk.nlu.versions",
    "save_model": "clawdesk.nlu.versions",
    "load_examples": "clawdesk.nlu.training.train",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
