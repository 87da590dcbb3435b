"""Conversation tests: scenario files, driving them through the pipeline, scoring them."""
