"""Benchmarks: every `clawdesk bench` command and the harness they drive."""
