"""Provider clients against the fake providers over real HTTP."""

from tests.fakes.fixtures import fake_servers, fakes, provider_settings

__all__ = ["fake_servers", "fakes", "provider_settings"]
