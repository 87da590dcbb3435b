"""The stripe sandbox provider, where the tests have always imported it from."""

from clawdesk.sandbox.stripe import *  # noqa: F403
