"""The shopify sandbox provider, where the tests have always imported it from."""

from clawdesk.sandbox.shopify import *  # noqa: F403
