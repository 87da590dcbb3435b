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
    from clawdesk.nlu.evaluate import EvalReport, evaluate, run_intent_eval
    from clawdesk.nlu.model import (
        OOS,
        ClassifierConfig,
        IntentClassifier,
        IntentExample,
        IntentPrediction,
    )
    from clawdesk.nlu.store import list_versions, load_model, save_model
    from clawdesk.nlu.train import load_examples

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
    "EvalReport": "clawdesk.nlu.evaluate",
    "evaluate": "clawdesk.nlu.evaluate",
    "run_intent_eval": "clawdesk.nlu.evaluate",
    "list_versions": "clawdesk.nlu.store",
    "load_model": "clawdesk.nlu.store",
    "save_model": "clawdesk.nlu.store",
    "load_examples": "clawdesk.nlu.train",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
