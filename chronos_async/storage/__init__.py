"""Payload stores: S3 (obstore or aioboto3), a local folder, or MongoDB itself."""

from chronos_async.storage._protocol import BlobInfo, BlobMissingError, BlobStore, Role
from chronos_async.storage.local import LocalBlobStore
from chronos_async.storage.mongo import MongoBlobStore
from chronos_async.storage.s3 import S3BlobStore
from chronos_async.storage.s3_obstore import ObstoreBlobStore

__all__ = [
    "BlobInfo",
    "BlobMissingError",
    "BlobStore",
    "LocalBlobStore",
    "MongoBlobStore",
    "ObstoreBlobStore",
    "Role",
    "S3BlobStore",
]
