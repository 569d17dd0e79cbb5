"""Retention and rollup of the live version index (and explicit expiry of old history).

The live version index ``<coll>_ver`` holds, per record, the versions its retention rule
keeps (``retention.ver`` or ``collection_maps.<name>.version_retention``); older ones are
*rolled up*: their version documents are moved, verbatim, into compressed manifests in
the backups store (one per record and period), catalogued in ``<coll>_rollup``. Their
payloads stay where they are. Every read answers for them as before, through the
catalog (:mod:`._versions`). Nothing is forgotten: only ``admin.expire`` deletes history.

Modules: :mod:`._layout` (pure: periods, selection, manifest bytes), :mod:`._archive`
(manifest I/O and catalog switches), :mod:`._rollup`, :mod:`._prune`, :mod:`._expire`
(the operations), :mod:`._purge` (GDPR erasure of one record), :mod:`._versions`
(reads), :mod:`._service` (background task), :mod:`._reports` (what they return).
"""

from chronos_async.lifecycle._layout import RetentionRule
from chronos_async.lifecycle._reports import ExpireReport, PruneReport, PurgeReport, RollupReport
from chronos_async.lifecycle._versions import iter_all_versions

__all__ = [
    "ExpireReport",
    "PruneReport",
    "PurgeReport",
    "RetentionRule",
    "RollupReport",
    "iter_all_versions",
]
