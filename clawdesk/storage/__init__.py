"""Where clawdesk keeps bytes that are not rows: the attachment object store."""

from clawdesk.storage.objects import FilesystemStore, ObjectStore, S3Store, open_store

__all__ = ["FilesystemStore", "ObjectStore", "S3Store", "open_store"]
