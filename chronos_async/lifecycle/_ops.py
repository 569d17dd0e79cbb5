"""The lifecycle operations over the collections an admin call names (what ``Admin``
delegates to): every backend that holds a collection is worked on in turn."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chronos_async._errors import ValidationError
from chronos_async._pack_admin import pack_settle_us
from chronos_async.lifecycle._archive import Archive
from chronos_async.lifecycle._expire import expire_collection
from chronos_async.lifecycle._prune import prune_collection
from chronos_async.lifecycle._reports import (
    ExpireReport,
    LifecycleProgress,
    PruneReport,
    RollupReport,
)
from chronos_async.lifecycle._rollup import rollup_collection, rule_for
from chronos_async.meta import RecordRepo

if TYPE_CHECKING:
    from chronos_async._client import Backend, Chronos

__all__ = ["run_expire", "run_prune", "run_rollup"]

Targets = Mapping[tuple[str, str], Sequence[tuple["Backend", RecordRepo]]]


def _check_progress(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise ValidationError("progress must be a callable progress(done, total)")


async def run_rollup(
    chronos: Chronos, targets: Targets, progress: LifecycleProgress | None
) -> RollupReport:
    """Roll up every target collection by its retention rule."""
    _check_progress(progress)
    total = RollupReport()
    period = chronos.config.rollup.manifest_period
    for (_, coll), holders in targets.items():
        rule = rule_for(chronos.config, coll)
        for backend, repo in holders:
            report = await rollup_collection(
                Archive.of(repo, backend.store),
                rule=rule,
                period=period,
                keys_ttl_us=chronos.config.idempotency.ttl_seconds * 1_000_000,
                progress=progress,
            )
            total = total + report
    return total


async def run_prune(
    chronos: Chronos, targets: Targets, grace_seconds: float, progress: LifecycleProgress | None
) -> PruneReport:
    """Finish interrupted rollups in every target collection."""
    _check_progress(progress)
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, (int, float)):
        raise ValidationError("grace_seconds must be a non-negative number")
    if not math.isfinite(grace_seconds) or grace_seconds < 0:
        raise ValidationError("grace_seconds must be a non-negative number")
    total = PruneReport()
    for holders in targets.values():
        for backend, repo in holders:
            report = await prune_collection(
                Archive.of(repo, backend.store), grace_seconds=grace_seconds, progress=progress
            )
            total = total + report
    return total


async def run_expire(
    chronos: Chronos,
    targets: Targets,
    *,
    before: datetime | str,
    keep_last: int,
    progress: LifecycleProgress | None,
) -> ExpireReport:
    """Delete history older than ``before`` (keeping ``keep_last`` versions per record)."""
    from chronos_async._read import parse_at

    _check_progress(progress)
    before_us = parse_at(before)
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise ValidationError("keep_last must be an integer of at least 1")
    clients: list[Any] = [backend.client for backend in chronos.backends]
    total = ExpireReport()
    for holders in targets.values():
        for backend, repo in holders:
            sharing = [
                b.client for b in chronos.backends if b.store.identity == backend.store.identity
            ]
            report = await expire_collection(
                Archive.of(repo, backend.store),
                before_us=before_us,
                keep_last=keep_last,
                clients=sharing or clients,
                settle_us=pack_settle_us(chronos.config),
                period=chronos.config.rollup.manifest_period,
                keys_ttl_us=chronos.config.idempotency.ttl_seconds * 1_000_000,
                progress=progress,
            )
            total = total + report
    return total
