"""Fake messaging providers (WhatsApp Graph API, Telegram Bot API, WeChat, an in-app
backend, SMTP, IMAP) on real loopback ports, and builders of the payloads each sends."""
