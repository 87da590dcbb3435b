"""The dhl sandbox provider, where the tests have always imported it from."""

from clawdesk.sandbox.dhl import *  # noqa: F403
