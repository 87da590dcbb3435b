"""Deployment files: compose.yaml, Prometheus rules and config, Grafana, k8s manifests.

No Docker engine is needed: compose.yaml is validated by `docker-compose config`, the
alert rules by `promtool`, and the rest by loading the files and comparing them with
`clawdesk.settings` and `clawdesk.ops.metrics`.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from clawdesk.settings import AppSettings, ConnectionSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
INFRA = ROOT / "infra"
PROMETHEUS_YML = INFRA / "prometheus" / "prometheus.yml"
ALERTS = INFRA / "prometheus" / "alerts.yml"
ALERTS_TEST = INFRA / "prometheus" / "alerts_test.yml"
DASHBOARDS = INFRA / "grafana" / "dashboards"
DATASOURCES = INFRA / "grafana" / "provisioning" / "datasources"
K8S = INFRA / "k8s"

APP_SERVICES = ("worker", "gateway", "ingest", "nlu", "dispatch", "lag-exporter")
CONNECTION_URLS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "QDRANT_URL")

MAKE_TEST_HINT = "`make test` installs it (apt-get install -y {package})"


# ------------------------------------------------------------------------- helpers


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _load_yaml_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def alert_rules() -> dict[str, dict[str, Any]]:
    rules = [rule for group in _load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    return {rule["alert"]: rule for rule in rules if "alert" in rule}


def _settings_env(cls: type[Any]) -> dict[str, str]:
    """Environment variable name -> field name, as pydantic-settings reads them."""
    prefix = cls.model_config.get("env_prefix", "")
    names = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names[(alias or field.alias or prefix + field_name).upper()] = field_name
    return names


CONNECTION_ENV = _settings_env(ConnectionSettings)
APP_ENV = _settings_env(AppSettings)
KNOWN_ENV = {**CONNECTION_ENV, **APP_ENV}

_VARIABLE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def _interpolate(value: str) -> str:
    """Compose interpolation with an empty environment: ${X:-default} -> default."""
    parts = value.split("$$")
    out = []
    for part in parts:

        def repl(m: re.Match[str]) -> str:
            if m.group("bare"):
                return ""
            op, arg = m.group("op"), m.group("arg") or ""
            return arg if op in (":-", "-") else ""

        out.append(_VARIABLE.sub(repl, part))
    return "$".join(out)


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: "" if value is None else _interpolate(str(value)) for key, value in env.items()}


def _metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\bclawdesk_[A-Za-z0-9_:]+", expr))


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        stack = list(dashboard.get("panels", []))
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield f"{path.name}: {panel.get('title')}", target["expr"]


def _normalise(expr: str) -> str:
    return " ".join(expr.split())


# -------------------------------------------------------------- (a) compose config


def _compose_command() -> list[str] | None:
    if exe := shutil.which("docker-compose"):
        return [exe]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


@pytest.mark.parametrize("profile", [None, "replica"])
def test_compose_config_is_valid(profile: str | None) -> None:
    command = _compose_command()
    if command is None:
        pytest.fail(
            "neither docker-compose nor the docker compose plugin is installed, so "
            "compose.yaml cannot be validated; " + MAKE_TEST_HINT.format(package="docker-compose")
        )
    args = [*command, "-f", str(COMPOSE)]
    if profile:
        args += ["--profile", profile]
    result = subprocess.run(
        [*args, "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)} config -q failed:\n{result.stderr}"


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    missing = [
        name
        for name, service in compose["services"].items()
        if not (service.get("healthcheck") or {}).get("test")
        or (service.get("healthcheck") or {}).get("disable")
    ]
    assert not missing, f"services without a healthcheck: {missing}"


def test_dependencies_wait_until_healthy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    problems = []
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            problems.append(f"{name}: depends_on is a list (no condition)")
            continue
        for dependency, spec in depends_on.items():
            if dependency not in services:
                problems.append(f"{name}: depends on unknown service {dependency}")
            elif (spec or {}).get("condition") != "service_healthy":
                problems.append(f"{name} -> {dependency}: condition is not service_healthy")
    assert not problems, "\n".join(problems)


def test_app_services_wait_for_all_infrastructure(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends_on = compose["services"][name].get("depends_on") or {}
        assert {"kafka", "postgres", "redis", "qdrant"} <= set(depends_on), name


# --------------------------------------------------- (b) env names are settings fields


def test_settings_env_names_are_introspected() -> None:
    # guards the helper itself: the names the brief and settings.py document
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "QDRANT_URL"} <= set(
        CONNECTION_ENV
    )
    assert {"CLAWDESK_DATA_DIR", "CLAWDESK_GATEWAY_HOST", "CLAWDESK_METRICS_PORT"} <= set(APP_ENV)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_env_names_are_settings_fields(compose: dict[str, Any], service: str) -> None:
    env = _service_env(compose["services"][service])
    assert env, f"{service} sets no environment"
    unknown = sorted(set(env) - set(KNOWN_ENV))
    assert not unknown, (
        f"{service} sets variables that clawdesk.settings does not read: {unknown}; "
        f"known: {sorted(KNOWN_ENV)}"
    )


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_env_values_are_valid_settings(compose: dict[str, Any], service: str) -> None:
    env = _service_env(compose["services"][service])
    connection = ConnectionSettings(
        _env_file=None, **{CONNECTION_ENV[k]: v for k, v in env.items() if k in CONNECTION_ENV}
    )
    app = AppSettings(_env_file=None, **{APP_ENV[k]: v for k, v in env.items() if k in APP_ENV})
    # an empty URL would silently start an embedded broker/database/cache/local Qdrant
    for variable in CONNECTION_URLS:
        assert getattr(connection, CONNECTION_ENV[variable]), f"{service}: {variable} is empty"
    assert connection.kafka_bootstrap_servers == "kafka:9092"
    assert connection.database_url.startswith("postgresql://")
    assert "@postgres:5432/" in connection.database_url
    assert connection.redis_url.startswith("redis://redis:6379")
    assert connection.qdrant_url == "http://qdrant:6333"
    assert app.topic_partitions >= 1


def test_gateway_listens_on_all_interfaces_and_is_published(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    env = _service_env(gateway)
    app = AppSettings(_env_file=None, **{APP_ENV[k]: v for k, v in env.items() if k in APP_ENV})
    assert app.gateway_host == "0.0.0.0"
    published = [str(p) for p in gateway.get("ports", [])]
    assert any(p.endswith(f":{app.gateway_port}") for p in published), published


def test_prometheus_scrapes_the_configured_ports(compose: dict[str, Any]) -> None:
    config = _load_yaml(PROMETHEUS_YML)
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    def ports(job: dict[str, Any]) -> set[int]:
        found = {sd["port"] for sd in job.get("dns_sd_configs", [])}
        for static in job.get("static_configs", []):
            found |= {int(target.rsplit(":", 1)[1]) for target in static["targets"]}
        return found

    worker = AppSettings(
        _env_file=None,
        **{
            APP_ENV[k]: v
            for k, v in _service_env(compose["services"]["worker"]).items()
            if k in APP_ENV
        },
    )
    gateway = AppSettings(
        _env_file=None,
        **{
            APP_ENV[k]: v
            for k, v in _service_env(compose["services"]["gateway"]).items()
            if k in APP_ENV
        },
    )
    assert ports(jobs["clawdesk-worker"]) == {worker.metrics_port}
    assert ports(jobs["clawdesk-gateway"]) == {gateway.gateway_port}
    assert jobs["clawdesk-gateway"].get("metrics_path", "/metrics") == "/metrics"
    assert ports(jobs["postgres"]) == {9187}
    assert ports(jobs["redis"]) == {9121}
    for exporter in ("postgres-exporter", "redis-exporter"):
        assert exporter in compose["services"], exporter


def test_k8s_env_names_are_settings_fields() -> None:
    problems = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _load_yaml_all(path):
            kind = doc.get("kind")
            if kind in ("ConfigMap", "Secret"):
                keys = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
                problems += [f"{path.name} {kind}: {k}" for k in sorted(keys - set(KNOWN_ENV))]
            if kind == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    names = {e["name"] for e in container.get("env", [])}
                    problems += [
                        f"{path.name} {container['name']}: {n}"
                        for n in sorted(names - set(KNOWN_ENV))
                    ]
    assert not problems, "names clawdesk.settings does not read:\n" + "\n".join(problems)


# The per-stage Deployments and their ScaledObjects: tests/infra/test_k8s.py.


# ------------------------------------------------------ (c) alerts, dashboards, metrics


@pytest.mark.parametrize(
    ("alert", "duration", "severity", "must_contain"),
    [
        (
            "HighErrorRate",
            "5m",
            "warning",
            ["rate(clawdesk_errors_total[5m])", "rate(clawdesk_messages_processed_total[5m])"],
        ),
        (
            "HighResponseTime",
            "5m",
            "warning",
            ["histogram_quantile(0.95,", "rate(clawdesk_response_time_seconds_bucket[5m])"],
        ),
        ("DatabaseDown", "1m", "critical", ['up{job="postgres"} == 0']),
    ],
)
def test_article_alerts_keep_their_thresholds(
    alert_rules: dict[str, dict[str, Any]],
    alert: str,
    duration: str,
    severity: str,
    must_contain: list[str],
) -> None:
    assert alert in alert_rules, f"alert {alert} missing from {ALERTS.name}"
    rule = alert_rules[alert]
    expr = _normalise(rule["expr"])
    for fragment in must_contain:
        assert fragment in expr, f"{alert}: {fragment!r} not in {expr!r}"
    assert rule["for"] == duration
    assert rule["labels"]["severity"] == severity
    # the article's Chinese summaries, plus an English description
    assert re.search(r"[\u4e00-\u9fff]", rule["annotations"]["summary"]), alert
    assert re.search(r"[A-Za-z]{4,}", rule["annotations"]["description"]), alert


@pytest.mark.parametrize(
    ("alert", "threshold"),
    [("HighErrorRate", r"> 0\.05$"), ("HighResponseTime", r"> 10$")],
)
def test_article_alert_threshold_values(
    alert_rules: dict[str, dict[str, Any]], alert: str, threshold: str
) -> None:
    assert re.search(threshold, _normalise(alert_rules[alert]["expr"])), alert_rules[alert]["expr"]


def test_lag_and_dead_letter_alerts_exist(alert_rules: dict[str, dict[str, Any]]) -> None:
    used = set().union(*(_metric_names_in(rule["expr"]) for rule in alert_rules.values()))
    assert "clawdesk_consumer_lag" in used
    assert "clawdesk_dead_letters_total" in used


OPERATIONS_ALERTS = [
    # alert, the metric (and selector) it watches, `for`, the condition it ends with
    (
        "HandoffTicketsFailing",
        "increase(clawdesk_handoff_ticket_failures_total[15m])",
        "5m",
        ">= 3",
    ),
    (
        "HandoffTicketRefused",
        'clawdesk_handoff_ticket_failures_total{reason="invalid"}',
        None,
        "> 0",
    ),
    ("HandoffTicketsPending", "max(clawdesk_handoff_tickets_pending)", "10m", "> 0"),
    ("LLMBreakerOpen", "clawdesk_llm_breaker_open", "5m", "== 1"),
    (
        "DispatchDeadLetters",
        'clawdesk_dispatch_sends_total{outcome="dead_lettered"}',
        None,
        "> 0",
    ),
    (
        "RateLimitFailingOpen",
        'rate(clawdesk_rate_limit_checks_total{result="error"}[5m])',
        "5m",
        "> 0",
    ),
]


@pytest.mark.parametrize(("alert", "watches", "duration", "condition"), OPERATIONS_ALERTS)
def test_operations_alerts_watch_their_metrics(
    alert_rules: dict[str, dict[str, Any]],
    alert: str,
    watches: str,
    duration: str | None,
    condition: str,
) -> None:
    assert alert in alert_rules, f"alert {alert} missing from {ALERTS.name}"
    rule = alert_rules[alert]
    expr = _normalise(rule["expr"])
    assert watches in expr and expr.endswith(condition), expr
    assert rule.get("for") == duration
    assert rule["labels"]["severity"] == "warning"
    # every rule has a promtool unit test of its own
    tested = {
        case["alertname"]
        for t in _load_yaml(ALERTS_TEST)["tests"]
        for case in t.get("alert_rule_test", [])
    }
    assert alert in tested, f"no promtool test for {alert} in {ALERTS_TEST.name}"


def test_dashboard_shows_what_the_operations_alerts_watch() -> None:
    exprs = " ".join(_normalise(expr) for _, expr in _dashboard_exprs())
    for alert, watches, _, _ in OPERATIONS_ALERTS:
        metric = re.search(r"clawdesk_[a-z_]+", watches)
        assert metric is not None and metric.group(0) in exprs, f"no panel for {alert}"


def test_dashboard_has_the_article_panels() -> None:
    dashboards = {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS.glob("*.json")
    }
    main = next((d for d in dashboards.values() if d["title"] == "clawdesk 智能客服监控"), None)
    assert main is not None, f"no dashboard titled 'clawdesk 智能客服监控' in {sorted(dashboards)}"
    titles = [p["title"] for p in main["panels"]]
    for wanted in ("消息处理速率", "响应时间 P95", "错误率"):
        assert any(t.startswith(wanted) for t in titles), (wanted, titles)
    ids = [p["id"] for p in main["panels"]]
    assert len(ids) == len(set(ids))
    datasource_uids = {
        ds["uid"] for path in DATASOURCES.glob("*.yml") for ds in _load_yaml(path)["datasources"]
    }
    for panel in main["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in datasource_uids, panel["title"]


def _is_declared(name: str, declared: set[str]) -> bool:
    candidates = {name}
    for suffix in ("_bucket", "_sum", "_count", "_created", "_total"):
        if name.endswith(suffix):
            candidates.add(name[: -len(suffix)])
    return bool(candidates & declared)


def test_metric_names_used_in_alerts_and_dashboards_are_declared(
    alert_rules: dict[str, dict[str, Any]],
) -> None:
    metrics = importlib.import_module("clawdesk.ops.metrics")
    declared = set(metrics.METRIC_NAMES)
    used: dict[str, set[str]] = {}
    for name, rule in alert_rules.items():
        for metric in _metric_names_in(rule["expr"]):
            used.setdefault(metric, set()).add(f"alerts.yml: {name}")
    for where, expr in _dashboard_exprs():
        for metric in _metric_names_in(expr):
            used.setdefault(metric, set()).add(where)
    assert used, "no clawdesk_* metric found in alerts or dashboards"
    undeclared = {m: sorted(w) for m, w in used.items() if not _is_declared(m, declared)}
    assert not undeclared, f"not in clawdesk.ops.metrics.METRIC_NAMES: {undeclared}"


def test_promtool_checks_and_unit_tests_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not installed, so the alert rules cannot be checked; "
            + MAKE_TEST_HINT.format(package="prometheus")
        )
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERTS_TEST)]):
        result = subprocess.run(
            [promtool, *args], cwd=ALERTS.parent, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
