"""The embedded system `make up` and the tests run: broker, Postgres, Redis, the supervised processes."""
