"""The k8s manifests: valid Kubernetes objects (kubernetes-validate, offline schemas),
ScaledObjects valid against KEDA's own CRD schema (the models `cloudcoil-models-keda`
generates from the KEDA 2.16 CRDs), and one Deployment with a lag-scaled ScaledObject
per stage of the catalog."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from pydantic import ValidationError

from agents import STAGE_NAMES
from clawdesk.settings import AppSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
KUBERNETES_VERSION = "1.30.0"


def _docs() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        with path.open(encoding="utf-8") as f:
            found += [(path.name, doc) for doc in yaml.safe_load_all(f) if doc]
    return found


DOCS = _docs()


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == kind}


BUILT_IN = [
    (f"{n}:{d['kind']}/{d['metadata']['name']}", d) for n, d in DOCS if d["kind"] != "ScaledObject"
]


@pytest.mark.parametrize(("where", "doc"), BUILT_IN)
def test_kubernetes_objects_are_valid(where: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def keda_problems(doc: dict[str, Any]) -> list[str]:
    """What KEDA's CRD schema refuses in a ScaledObject: the models raise on a wrong type
    or a missing required field, and a field they do not know (a misspelling, which the
    API server would prune silently) is absent from the validated object's dump."""
    parsed = ScaledObject.model_validate(doc)  # raises pydantic.ValidationError
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return _unknown(doc, kept, "")


def _unknown(given: Any, kept: Any, where: str) -> list[str]:
    if isinstance(given, dict) and isinstance(kept, dict):
        found = []
        for key, value in given.items():
            if key not in kept:
                found.append(f"{where}.{key}".lstrip("."))
            else:
                found += _unknown(value, kept[key], f"{where}.{key}")
        return found
    if isinstance(given, list) and isinstance(kept, list):
        return [
            p
            for i, (g, k) in enumerate(zip(given, kept, strict=False))
            for p in _unknown(g, k, f"{where}[{i}]")
        ]
    return []


def test_scaled_objects_match_the_keda_schema() -> None:
    scaled = _of_kind("ScaledObject")
    assert scaled
    for name, doc in scaled.items():
        assert keda_problems(doc) == [], name


def test_the_schema_refuses_a_misspelt_field() -> None:
    doc = copy.deepcopy(next(iter(_of_kind("ScaledObject").values())))
    doc["spec"]["maxReplicas"] = 10  # the HPA's name for it, not KEDA's
    assert keda_problems(doc) == ["spec.maxReplicas"]


def test_the_schema_refuses_a_wrong_type_and_a_missing_required_field() -> None:
    doc = copy.deepcopy(next(iter(_of_kind("ScaledObject").values())))
    doc["spec"]["triggers"][0]["type"] = 7
    with pytest.raises(ValidationError):
        keda_problems(doc)
    del doc["spec"]["scaleTargetRef"]
    with pytest.raises(ValidationError):
        keda_problems(doc)


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_each_stage_has_a_deployment_scaled_on_its_groups_lag(stage: str) -> None:
    deployment = _of_kind("Deployment")[f"clawdesk-{stage}"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker", "--stages", stage]
    scaled = _of_kind("ScaledObject")[f"clawdesk-{stage}"]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    # The source article's HPA: 3 to 10 replicas, CPU 70 %, memory 80 %, beside the lag.
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (3, 10)
    triggers = {t["type"]: t for t in spec["triggers"]}
    assert triggers["cpu"]["metadata"]["value"] == "70"
    assert triggers["memory"]["metadata"]["value"] == "80"
    config = _of_kind("ConfigMap")["clawdesk-config"]["data"]
    settings = AppSettings(_env_file=None, app_id=config.get("CLAWDESK_APP_ID", "clawdesk"))  # type: ignore[call-arg]
    kafka = triggers["kafka"]["metadata"]
    assert kafka["consumerGroup"] == settings.worker_group(stage)
    assert kafka["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    assert int(config["CLAWDESK_TOPIC_PARTITIONS"]) >= spec["maxReplicaCount"]


def test_no_plain_hpa_fights_the_scaled_objects() -> None:
    assert _of_kind("HorizontalPodAutoscaler") == {}


def test_the_model_stages_keep_the_articles_resources() -> None:
    for stage in ("nlu", "retrieve"):
        deployment = _of_kind("Deployment")[f"clawdesk-{stage}"]
        resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources["requests"] == {"memory": "2Gi", "cpu": "1000m"}
        assert resources["limits"] == {"memory": "4Gi", "cpu": "2000m"}


def test_the_stages_dashboard_has_a_row_per_stage() -> None:
    dashboard = json.loads((ROOT / "infra/grafana/dashboards/stages.json").read_text("utf-8"))
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == list(STAGE_NAMES)
    exprs = " ".join(
        t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]
    )
    for stage in STAGE_NAMES:
        assert f'clawdesk_group_lag{{stage="{stage}"}}' in exprs, stage
