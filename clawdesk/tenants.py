"""A tenant's profile: the names its customers see (shop name, the assistant's name,
the chat page's title) and its welcome text, per language. Read from configuration,
never written in code: `<tenant id>.yaml` in `CLAWDESK_TENANTS_DIR` (`tenants_dir`),
else in the packaged `clawdesk/data/tenants` (the demo tenant, ClawShop, lives there).
A tenant with no profile gets neutral names.

    display_name: Acme Outfitters
    assistant: {en: the Acme assistant, zh: Acme 智能客服}   # optional
    title: {en: Acme Help, zh: Acme 客服}                    # optional
    welcome: {en: "Hi! ...", zh: "您好!..."}                  # optional
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clawdesk.settings import app_settings

log = logging.getLogger(__name__)

PACKAGED_DIR = Path(__file__).resolve().parent / "data" / "tenants"
LANGUAGES = ("en", "zh")
_TENANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # also keeps lookups inside the directory

# Neutral texts for a tenant without a profile (or a profile that leaves them out).
NEUTRAL_NAME = {"en": "our shop", "zh": "本店"}
NEUTRAL_ASSISTANT = {"en": "the virtual assistant", "zh": "智能客服"}
NEUTRAL_TITLE = {"en": "Customer support", "zh": "在线客服"}
ASSISTANT = {"en": "the {name} assistant", "zh": "{name} 智能客服"}
TITLE = {"en": "{name} Support", "zh": "{name} 客服"}
WELCOME = {
    "en": "Hello! I'm {assistant}. Ask me about orders, shipping, returns, refunds, payment "
    'or your account — or write "agent" to talk to a person.',
    "zh": "您好!我是{assistant},可以帮您查询订单、物流、退换货、退款、支付和账户问题;"
    "如需人工客服,请回复“人工”。",
}


def _lang(language: str) -> str:
    return "zh" if language.lower().startswith("zh") else "en"


class TenantProfile(BaseModel):
    """What a tenant's customers are told its name is, and how they are welcomed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str
    display_name: str = Field(default="", max_length=100, description="the shop's name")
    assistant: dict[str, str] = Field(default_factory=dict, description="per language")
    title: dict[str, str] = Field(default_factory=dict, description="chat page title")
    welcome: dict[str, str] = Field(default_factory=dict, description="per language")

    def name_in(self, language: str) -> str:
        """The shop's name (a neutral one when the tenant has none)."""
        return self.display_name or NEUTRAL_NAME[_lang(language)]

    def assistant_in(self, language: str) -> str:
        """How the assistant introduces itself ("the ClawShop assistant")."""
        lang = _lang(language)
        if lang in self.assistant:
            return self.assistant[lang]
        if self.display_name:
            return ASSISTANT[lang].format(name=self.display_name)
        return NEUTRAL_ASSISTANT[lang]

    def title_in(self, language: str) -> str:
        """The chat page's title."""
        lang = _lang(language)
        if lang in self.title:
            return self.title[lang]
        return (
            TITLE[lang].format(name=self.display_name) if self.display_name else NEUTRAL_TITLE[lang]
        )

    def welcome_in(self, language: str) -> str:
        """The welcome for a new follower, /start, or the chat page."""
        lang = _lang(language)
        return self.welcome.get(lang) or WELCOME[lang].format(assistant=self.assistant_in(lang))

    def names(self, language: str) -> dict[str, str]:
        """The values templates substitute: {name}, {assistant}."""
        return {"name": self.name_in(language), "assistant": self.assistant_in(language)}

    def page(self) -> dict[str, Any]:
        """The profile as the web page reads it (every language filled in)."""
        return {
            "tenant_id": self.tenant_id,
            "display_name": self.name_in("en"),
            "title": {lang: self.title_in(lang) for lang in LANGUAGES},
            "assistant": {lang: self.assistant_in(lang) for lang in LANGUAGES},
            "welcome": {lang: self.welcome_in(lang) for lang in LANGUAGES},
        }


@lru_cache(maxsize=256)
def load_profile(tenant_id: str, directories: tuple[Path, ...]) -> TenantProfile:
    """The profile from the first directory holding `<tenant_id>.yaml`; a neutral one
    when none does (or the file is unreadable: logged, the chat still works)."""
    if _TENANT_ID.match(tenant_id):
        for directory in directories:
            path = directory / f"{tenant_id}.yaml"
            if not path.is_file():
                continue
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                return TenantProfile(**{**data, "tenant_id": tenant_id})
            except (OSError, yaml.YAMLError, ValidationError, TypeError):
                log.exception("tenant profile unreadable", extra={"path": str(path)})
                break
    return TenantProfile(tenant_id=tenant_id)


def tenant_profile(tenant_id: str) -> TenantProfile:
    """The tenant's profile, from `tenants_dir` if set, else the packaged profiles."""
    configured = app_settings().tenants_dir
    directories = (*((Path(configured),) if configured else ()), PACKAGED_DIR)
    return load_profile(tenant_id, directories)
