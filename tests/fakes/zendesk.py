"""The zendesk sandbox provider, where the tests have always imported it from."""

from clawdesk.sandbox.zendesk import *  # noqa: F403
