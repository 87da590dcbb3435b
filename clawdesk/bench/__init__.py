"""Benchmarks: what each `clawdesk bench` command measures, and the harness they drive."""
