"""The HTTP gateway: web chat API, reply WebSockets, health, readiness and metrics."""

from clawdesk.gateway.app import create_app

__all__ = ["create_app"]
