"""Webhook authentication shared by the channels, and the errors a webhook parse raises.

Every comparison of a secret or a MAC is constant-time and done on bytes
(`hmac.compare_digest` refuses non-ASCII str, and a header can carry anything).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="
# The headers of clawdesk's own signed calls (in-app callbacks, the inbound-mail hook).
CLAWDESK_SIGNATURE_HEADER = "X-Clawdesk-Signature"
CLAWDESK_TIMESTAMP_HEADER = "X-Clawdesk-Timestamp"


class SignatureError(ValueError):
    """The request is not from the provider: signature, token or key missing or wrong."""


class StaleRequest(SignatureError):
    """A correctly signed request whose signed timestamp is too old (or too new): a replay."""


class PayloadError(ValueError):
    """The body is not a payload of the provider's shape."""


class UnknownTenant(LookupError):
    """The payload is addressed to an account no tenant is configured for."""


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def secrets_equal(given: str | bytes | None, expected: str | bytes) -> bool:
    """Whether a presented secret matches, in constant time; None never matches."""
    if given is None:
        return False
    return hmac.compare_digest(_bytes(given), _bytes(expected))


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of `message`."""
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def verify_sha256_header(header: str | None, secret: str | bytes, body: bytes) -> None:
    """Check a `sha256=<hex HMAC of the body>` header (Meta's X-Hub-Signature-256)."""
    if not header:
        raise SignatureError("missing signature")
    expected = SIGNATURE_PREFIX + hmac_sha256_hex(secret, body)
    if not secrets_equal(header.strip().lower(), expected):
        raise SignatureError("bad signature")


def sign_timestamped(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC of "<timestamp>.<body>">`: the timestamp is signed too, so an
    old request cannot be replayed with a fresh timestamp header."""
    return SIGNATURE_PREFIX + hmac_sha256_hex(secret, f"{timestamp}.".encode() + body)


def check_fresh(timestamp: str | None, now: float, max_skew_s: float) -> int:
    """The timestamp (unix seconds) if within `max_skew_s` of `now`, else raise."""
    if timestamp is None or not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureError("missing or malformed timestamp")
    if len(timestamp) > 12:  # more digits than any plausible time
        raise StaleRequest("timestamp outside the allowed window")
    value = int(timestamp)
    if abs(now - value) > max_skew_s:
        raise StaleRequest("timestamp outside the allowed window")
    return value


def verify_timestamped(
    secret: str | bytes,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    *,
    now: float,
    max_skew_s: float,
) -> None:
    """Check a signature made by `sign_timestamped`, and that its timestamp is fresh."""
    if not signature:
        raise SignatureError("missing signature")
    ts = check_fresh(timestamp, now, max_skew_s)
    if not secrets_equal(signature.strip().lower(), sign_timestamped(secret, ts, body)):
        raise SignatureError("bad signature")


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's signature: hex SHA-1 of token, timestamp and nonce sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
