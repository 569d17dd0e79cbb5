"""Payload stores: S3 (aioboto3), a local folder, or MongoDB itself."""

from chronos_async.storage._protocol import BlobInfo, BlobMissingError, BlobStore, Role

__all__ = ["BlobInfo", "BlobMissingError", "BlobStore", "Role"]
