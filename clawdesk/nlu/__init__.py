"""Intent NLU for clawdesk: intent classification with out-of-scope rejection, entity
extraction and language detection, for Chinese and English customer messages.

Light parts (entities, language, labels) import instantly; the classifier parts pull in
torch and sentence-transformers, so they are loaded on first use.

Serving (what the nlu stage runs) lives in this package: the fitted model
(:mod:`~clawdesk.nlu.model`), its saved form (:mod:`~clawdesk.nlu.persistence`,
:mod:`~clawdesk.nlu.versions`), features, oos scoring, entities, language, cues and
resolution.  Fitting and evaluation live in :mod:`clawdesk.nlu.training`, which serving
never imports at module level.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clawdesk.nlu.entities import Entity, extract_entities
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.language import detect_language
from clawdesk.nlu.prediction import IntentPrediction

if TYPE_CHECKING:
    from clawdesk.nlu.config import ClassifierConfig
    from clawdesk.nlu.model import IntentClassifier
    from clawdesk.nlu.training.evaluate import EvalReport, evaluate, run_intent_eval
    from clawdesk.nlu.training.examples import IntentExample, load_examples
    from clawdesk.nlu.training.fit import fit_intent_model
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
    "fit_intent_model",
    "list_versions",
    "load_examples",
    "load_model",
    "run_intent_eval",
    "save_model",
]

_LAZY = {
    "ClassifierConfig": "clawdesk.nlu.config",
    "IntentClassifier": "clawdesk.nlu.model",
    "IntentExample": "clawdesk.nlu.training.examples",
    "fit_intent_model": "clawdesk.nlu.training.fit",
    "EvalReport": "clawdesk.nlu.training.evaluate",
    "evaluate": "clawdesk.nlu.training.evaluate",
    "run_intent_eval": "clawdesk.nlu.training.evaluate",
    "list_versions": "clawdesk.nlu.versions",
    "load_model": "clawdesk.nlu.versions",
    "save_model": "clawdesk.nlu.versions",
    "load_examples": "clawdesk.nlu.training.examples",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
