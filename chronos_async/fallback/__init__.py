"""The durable fallback queue: writes that queue instead of failing, and their worker.

Public names are re-exported from :mod:`chronos_async`; see
:class:`~chronos_async.fallback._service.Fallback` (``chronos.fallback``).
"""

from chronos_async.fallback._handle import QueuedCollection
from chronos_async.fallback._ops import FallbackOp, QueuedWrite, QueueStats
from chronos_async.fallback._service import Fallback

__all__ = ["Fallback", "FallbackOp", "QueueStats", "QueuedCollection", "QueuedWrite"]
