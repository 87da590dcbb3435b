"""Tenant-facing names come from the tenant's profile (configuration): a second tenant
is greeted with its own name in a reply and a /start welcome; the demo tenant keeps
ClawShop (its packaged profile); an unknown tenant gets neutral names."""

from __future__ import annotations

import pytest

from agents.reply import compose
from clawdesk.tenants import TenantProfile, tenant_profile
from connectors import conventions
from tests.fakes.tenants import acme_tenant
from tests.llm.events import skill_result

__all__ = ["acme_tenant"]
pytestmark = pytest.mark.usefixtures("acme_tenant")


def greeting(tenant: str, language: str = "en") -> str:
    result = skill_result("hi", tenant=tenant, intent="greeting", language=language, hits=[])
    return compose(result).text


def test_a_reply_greets_with_the_tenants_own_name() -> None:
    assert greeting("acme") == (
        "Hello! I'm the Acme Outfitters assistant. Ask me about orders, shipping, returns, "
        "refunds, payment or your account."
    )
    assert "ClawShop" in greeting("demo")  # the packaged demo profile, still found
    assert "Acme" not in greeting("demo")
    goodbye = skill_result("bye", tenant="acme", intent="goodbye", hits=[])
    assert compose(goodbye).text == "Thanks for contacting Acme Outfitters. Have a great day!"


def test_an_unknown_tenant_gets_neutral_names() -> None:
    text = greeting("nobody", "zh")
    assert "ClawShop" not in text and "Acme" not in text
    assert text.startswith("您好!我是智能客服")
    assert tenant_profile("../demo") == TenantProfile(tenant_id="../demo")  # no path tricks


def test_start_welcomes_with_the_tenants_welcome() -> None:
    acme = tenant_profile("acme")
    assert conventions.welcome_text("en", {}, acme) == (
        "Welcome to Acme Outfitters! Ask about your gear."
    )
    # No welcome in Chinese in the profile: the default one, with the tenant's name.
    assert "Acme Outfitters 智能客服" in conventions.welcome_text("zh", {}, acme)
    # A welcome stored with the tenant (Postgres) still wins over the profile.
    assert conventions.welcome_text("en", {"en": "Hi from the DB"}, acme) == "Hi from the DB"
