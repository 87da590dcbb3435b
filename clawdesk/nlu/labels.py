"""Labels with a fixed meaning across clawdesk: one definition, imported everywhere."""

from __future__ import annotations

__all__ = ["OOS"]

# The intent of a message no intent fits: the classifier's rejection, a training row
# that is not an intent, and the nlu stage's "no intent" all use this one label.
OOS = "oos"
