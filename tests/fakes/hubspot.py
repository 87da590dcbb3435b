"""The hubspot sandbox provider, where the tests have always imported it from."""

from clawdesk.sandbox.hubspot import *  # noqa: F403
