"""Persistence: Postgres tables and migrations, the Redis cache, the attachment object store."""

from clawdesk.storage.objects import FilesystemStore, ObjectStore, S3Store, open_store

__all__ = ["FilesystemStore", "ObjectStore", "S3Store", "open_store"]
