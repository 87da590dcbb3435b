"""The embedded system of `make up` and the tests: broker, stores, supervised processes."""
