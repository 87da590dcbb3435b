"""JSON logging for every clawdesk process."""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

# Credentials that reach log lines inside text: a URL's password (DATABASE_URL, REDIS_URL),
# secret query parameters (uvicorn's access log shows `?hub.verify_token=`, the reply
# socket's `?token=`), bearer tokens, and Telegram's `/bot<token>/` path.
# Values stop at a backslash too: in a JSON line, `\"` ends a quoted URL.
_SECRETS = re.compile(
    r"(?P<keep>[a-z][a-z0-9+.-]*://[^/\s:@\"'\\]*:)[^@\s/\"'\\]+(?=@)"
    r"|(?P<param>[?&][\w.-]*(?:token|secret|key|password|passwd|signature)[\w.-]*=)[^&\s\"'\\]+"
    r"|(?P<scheme>\bBearer\s+)[\w.~+/=-]+"
    r"|(?P<bot>/bot)\d+:[\w-]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the credentials in it replaced by `***`."""
    return _SECRETS.sub(lambda m: next(g for g in m.groups() if g is not None) + "***", text)


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines with credentials redacted from the whole line (message, extras and
    tracebacks alike), whichever library logged them."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def json_handler() -> logging.Handler:
    """A handler writing one JSON object per record (extras included, credentials
    redacted) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler._clawdesk = True  # type: ignore[attr-defined]
    return handler


def configure_logging(level: str = "INFO") -> None:
    """Send JSON lines to stderr at `level` (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_clawdesk", False) for h in root.handlers):
        return
    root.addHandler(json_handler())
    root.setLevel(level)
