"""The gateway's web secret: it signs conversation tokens (`clawdesk.gateway.tokens`)
and the short-lived links to stored files (`clawdesk.storage.attachments.signed_path`).

Kept apart from the gateway so a worker that signs a link (the dispatcher, for a file
sent as a link) does not import the gateway's app. A worker's link only opens at the
gateway when both read the same secret: `web_token_secret` set for both (or one data
dir shared).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from clawdesk.settings import AppSettings

log = logging.getLogger(__name__)

SECRET_FILE = "web-token.secret"


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
