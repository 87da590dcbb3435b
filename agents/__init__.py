"""One Faust agent per pipeline stage, found by the app's autodiscovery."""
