"""Replays: stored traffic run through a candidate version in shadow, then compared."""
