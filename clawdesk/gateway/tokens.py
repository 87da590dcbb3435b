"""Conversation tokens: what proves a web visitor (or an in-app client) owns a conversation.

The gateway creates every web conversation id itself (128 random bits) and hands the
visitor a token, `v1.<HMAC-SHA256 of tenant and conversation id>.<tenant>`. Reading the
history, the deliveries or the reply socket, and posting more messages to the
conversation, need the token. It is stateless (any gateway with the same secret checks
it) and never expires; changing the secret invalidates every token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import HTTPConnection

from clawdesk.gateway.state import gateway_state
from clawdesk.settings import AppSettings

log = logging.getLogger(__name__)

VERSION = "v1"
SECRET_FILE = "web-token.secret"
# Domain separation: this key signs nothing else, but a future use must not collide.
_CONTEXT = b"clawdesk web conversation\x00"


def new_conversation_id() -> str:
    """A fresh web conversation id nobody can guess (128 random bits)."""
    return "web-" + secrets.token_hex(16)


@dataclass(frozen=True)
class Owner:
    """Whose conversation a valid token opens."""

    tenant_id: str
    conversation_id: str


@dataclass(frozen=True, repr=False)
class ConversationTokens:
    """Issues and checks the tokens of one secret (repr hides it from logs)."""

    secret: bytes

    def issue(self, tenant_id: str, conversation_id: str) -> str:
        """The token that opens `conversation_id` of `tenant_id`."""
        return f"{VERSION}.{self._signature(tenant_id, conversation_id)}.{tenant_id}"

    def verify(self, token: str | None, conversation_id: str) -> Owner | None:
        """The owner if `token` opens `conversation_id`, else None (constant-time check)."""
        version, _, rest = (token or "").partition(".")
        signature, _, tenant_id = rest.partition(".")
        if version != VERSION or not signature or not tenant_id:
            return None
        expected = self._signature(tenant_id, conversation_id)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        return Owner(tenant_id, conversation_id)

    def _signature(self, tenant_id: str, conversation_id: str) -> str:
        message = _CONTEXT + tenant_id.encode() + b"\x00" + conversation_id.encode()
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def __repr__(self) -> str:
        return "ConversationTokens(secret=***)"


def load_secret(settings: AppSettings) -> bytes:
    """`web_token_secret`, else the one stored in the data dir (created on first use, so
    tokens survive a gateway restart)."""
    if settings.web_token_secret and settings.web_token_secret.get_secret_value():
        return settings.web_token_secret.get_secret_value().encode()
    return _stored_secret(settings.data_dir / SECRET_FILE)


def _stored_secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then linked into place: of two gateways starting at once on one
        # data dir, one link wins and both read the same complete secret.
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_urlsafe(48).encode())
        try:
            os.link(draft, path)
            log.info("generated the web token secret", extra={"path": str(path)})
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes().strip()


def conversation_tokens(conn: HTTPConnection) -> ConversationTokens:
    """FastAPI dependency: the app's token signer (built on first use from its settings)."""
    tokens = getattr(conn.app.state, "web_tokens", None)
    if not isinstance(tokens, ConversationTokens):
        tokens = ConversationTokens(load_secret(gateway_state(conn).settings))
        conn.app.state.web_tokens = tokens
    return tokens


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if that is what it is."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
