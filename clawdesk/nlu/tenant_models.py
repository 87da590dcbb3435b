"""Per-tenant intent models for the nlu stage: load the stored version or train one.

This is serving: it imports :mod:`clawdesk.nlu.training` only inside
:func:`train_cold_start`, the one place the worker fits a model – when a tenant has no
stored version yet (the demo tenant on a fresh install).  Moving all of :meth:`TenantNlu.ensure`
into training would make the serving path depend on training; importing training at the
top would load the whole fitting bench (sklearn's solvers, the fine-tuning code) into
every worker whose tenants all have stored models, which is every worker but the first
of a fresh install.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.prediction import IntentPrediction
from clawdesk.nlu.versions import list_versions, load_model, save_model

log = logging.getLogger(__name__)
# A cold-start training takes about a minute on 2 loaded cores; waiting longer means the
# process that holds the lock is stuck, and the error says so.
TRAIN_LOCK_TIMEOUT_S = 900

# The floor the nlu stage used before confidences were calibrated: a model stored then
# reports the head's raw, under-confident probabilities, which the calibrated default
# (0.90) would turn into oos almost always.
LEGACY_MIN_CONFIDENCE = 0.45


@dataclass
class LoadedModel:
    """A tenant's classifier and its version."""

    version: str
    classifier: IntentClassifier


class TenantNlu:
    """Holds one loaded classifier per tenant; thread-safe for executor calls."""

    def __init__(self, root: Path, encoder: str, min_confidence: float) -> None:
        self.root = root
        self.encoder = encoder
        self.min_confidence = min_confidence
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def ensure(self, tenant_id: str, intents_file: Path, version: str | None = None) -> str:
        """Load `version` (default: latest) for the tenant, training from the file if none."""
        with self._lock:
            if not list_versions(self.root, tenant_id):
                self._train_once(tenant_id, intents_file)
            clf = load_model(self.root, tenant_id, version)
            chosen = version or list_versions(self.root, tenant_id)[-1]
            if not calibrated(clf):
                # Stored before calibration, or trained with too few examples to fit it.
                log.warning(
                    "intent model reports uncalibrated confidences: its floor is "
                    f"{LEGACY_MIN_CONFIDENCE}; retrain it (clawdesk nlu train) to calibrate",
                    extra={"tenant": tenant_id, "version": chosen},
                )
            self._models[tenant_id] = LoadedModel(chosen, clf)
            return chosen

    def _train_once(self, tenant_id: str, intents_file: Path) -> None:
        """Train the tenant's first model unless another process sharing the models
        directory is doing it: workers started together waited for one training instead
        of each training its own (two versions, twice the start-up CPU)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root / f".{tenant_id}.training.lock", timeout=TRAIN_LOCK_TIMEOUT_S):
            if list_versions(self.root, tenant_id):  # trained while this one waited
                return
            log.info("training intent model", extra={"tenant": tenant_id})
            save_model(self.root, tenant_id, train_cold_start(intents_file, self.encoder))

    def min_confidence_for(self, tenant_id: str) -> float:
        """The confidence below which the tenant's intent is oos: the configured floor,
        or for a model stored before calibration, the floor its raw probabilities had."""
        model = self._models[tenant_id]
        return self.min_confidence if calibrated(model.classifier) else LEGACY_MIN_CONFIDENCE

    def version(self, tenant_id: str) -> str:
        """The version of the tenant's loaded model (KeyError if none is loaded)."""
        return self._models[tenant_id].version

    def intents(self, tenant_id: str) -> list[str]:
        """The intents the tenant's loaded model knows."""
        return self._models[tenant_id].classifier.intents

    def predict(self, tenant_id: str, texts: list[str]) -> tuple[str, list[IntentPrediction]]:
        """The tenant's model version and one prediction per text."""
        model = self._models[tenant_id]
        return model.version, model.classifier.predict(texts)


def train_cold_start(intents_file: Path, encoder: str) -> IntentClassifier:
    """A first model for a tenant with none stored, from its intents file.

    A few dozen examples per tenant: the head alone trains in seconds; contrastive
    fine-tuning is for `clawdesk nlu train` on real data.
    """
    # Imported here, not at the top: training is only needed on a cold start (see the
    # module docstring), and the serving path must not load it otherwise.
    from clawdesk.nlu.training.examples import load_examples
    from clawdesk.nlu.training.fit import fit_intent_model

    return fit_intent_model(
        load_examples(intents_file), ClassifierConfig(finetune=False, encoder=encoder)
    )


def calibrated(clf: IntentClassifier) -> bool:
    """Whether the classifier reports tempered (calibrated) confidences."""
    return "temperature_from" in clf.info
