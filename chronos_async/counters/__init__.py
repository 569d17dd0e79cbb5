"""Counters: collection totals, conditional event counts, gauges and unique values.

The public surface is ``chronos.counters`` (:class:`Counters`) and the results it returns;
``admin.recount()`` and ``admin.verify()`` repair and check the totals.
"""

from chronos_async.counters._counting import Counting
from chronos_async.counters._recount import stamp, stored_data
from chronos_async.counters._service import CounterDrift, Counters, RecountReport, Totals

__all__ = [
    "CounterDrift",
    "Counters",
    "Counting",
    "RecountReport",
    "Totals",
    "stamp",
    "stored_data",
]
