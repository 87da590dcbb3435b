"""The base sandbox provider, where the tests have always imported it from."""

from clawdesk.sandbox.base import *  # noqa: F403
