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
import secrets
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from clawdesk.gateway.state import gateway_state

# Re-exported: the secret lives apart so workers can sign links without the gateway.
from clawdesk.web_secret import SECRET_FILE as SECRET_FILE
from clawdesk.web_secret import load_secret as load_secret

VERSION = "v1"
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
