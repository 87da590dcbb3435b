"""Embedded infrastructure: the parts `make up` and the tests start on this machine."""
