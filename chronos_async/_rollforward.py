"""Publishing claims whose writers stopped: roll-forward of updates, adoption of creates.

A claimed version is complete (its payload was stored before the claim), so when its
writer stops between claim and publication, anyone may publish it once the writer can no
longer act on it (:func:`settle_age_us`): the next writer of the record, ``repair`` or
``reconcile``. It is published with a new commit time, later than every read that could
have missed it, which keeps as-of answers final (see :mod:`._publish`).
"""

from __future__ import annotations

from typing import Any

from chronos_async._config import ChronosConfig
from chronos_async._keys import head_id, version_id
from chronos_async._scope import now_us
from chronos_async.meta import DuplicateKeyError, RecordRepo

__all__ = ["adopt_create", "head_from_version", "publish_claim", "settle_age_us"]

Doc = dict[str, Any]
#: Version fields a head does not mirror. Heads keep ``token`` (the write attempt that
#: published them): a writer whose reply was lost can tell whether its head move landed.
_VERSION_ONLY = ("_id", "function_id", "fence", "claim_us", "prev_at", "idem", "idem_fp")


def head_from_version(version: Doc, hid: str, at: int) -> Doc:
    """The head document that publishes ``version`` with commit time ``at``."""
    head = {k: v for k, v in version.items() if k not in _VERSION_ONLY}
    head["_id"] = hid
    head["at"] = at
    head["updated_us"] = at
    if head.get("created_us") is None:
        head["created_us"] = at
    head["deleted_us"] = at if head.get("deleted") else None
    return head


def settle_age_us(config: ChronosConfig, *, create: bool) -> int:
    """How old a claim must be before anyone but its writer may publish it.

    An update's claim: older than a lease and than the commit window (and its record's
    lease must have expired: :func:`publish_claim` moves the head only from the state the
    claim extends). A create has no lease, so its claim must also be older than anything
    its writer could still be doing with it: waiting for the claim's reply, then deleting
    it (three MongoDB deadlines). An adoption then never races with a withdrawal.
    """
    age = max(config.leases.lease_ms, config.deadlines.commit_ms)
    if create:
        age = max(age, 3 * config.deadlines.mongo_ms)
    return age * 1000


async def adopt_create(repo: RecordRepo, tenant: str | None, item_id: str, settle_us: int) -> bool:
    """Publish a creation whose writer stopped between claim and head insert.

    Only claims older than ``settle_us`` are adopted (:func:`settle_age_us`), so a creator
    that is merely slow is never overtaken. The creation commits now.
    """
    pending = await repo.find_version(version_id(tenant, item_id, 0))
    claimed = 0 if pending is None else int(pending.get("claim_us") or 0)
    if pending is None or claimed > now_us() - settle_us:
        return False
    hid = head_id(tenant, item_id)
    try:
        await repo.insert_head(head_from_version(pending, hid, max(now_us(), claimed + 1)))
    except DuplicateKeyError:
        return False
    return True


async def publish_claim(
    repo: RecordRepo,
    tenant: str | None,
    item_id: str,
    head_ov: int,
    *,
    lease_token: str | None = None,
    fence: int | None = None,
) -> bool:
    """Move the head from ``head_ov`` to the claimed version ``head_ov + 1``, if both hold.

    It commits now, not at its writer's claim: reads made since the claim did not see
    it, so its commit time must be later than all of them. The compare-and-swap is the
    one writers use, so it never overwrites newer work.
    """
    pending = await repo.find_version(version_id(tenant, item_id, head_ov + 1))
    if pending is None:
        return False
    hid = head_id(tenant, item_id)
    at = max(now_us(), int(pending["prev_at"]) + 1, int(pending.get("claim_us") or 0) + 1)
    head = head_from_version(pending, hid, at)
    if fence is not None:
        head["lease_fence"] = fence
    return await repo.move_head(hid, head_ov, head, lease_token=lease_token)
