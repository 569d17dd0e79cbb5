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

__all__ = [
    "adopt_create",
    "follow_moved_payload",
    "head_from_version",
    "publish_claim",
    "settle_age_us",
]

Doc = dict[str, Any]
#: Version fields a head does not mirror. Heads keep ``token`` (the write attempt that
#: published them): a writer whose reply was lost can tell whether its head move landed.
_VERSION_ONLY = (
    "_id",
    "function_id",
    "fence",
    "claim_us",
    "prev_at",
    "idem",
    "idem_fp",
    "payload_ov",
    "cnt",
    "cu",
)


async def follow_moved_payload(repo: RecordRepo, tenant: str | None, version: Doc) -> Doc:
    """Point an unpublished claim that reuses a packed payload at where it lies now.

    A delete or restore copies the payload location of version ``payload_ov`` of its
    record. If a pack rewrite (compaction, or a hard delete of a pack-mate) moved that
    payload after the copy was made, the old pack may be gone once the rewrite saw no
    claim pointing into it. So after claiming, and before publishing, the claim is moved
    to the source's current place (``version`` is updated; it is returned). Linearizable:
    a rewrite repoints the source before its last reference check, and this reads the
    source after the claim exists, so either the rewrite saw the claim (and keeps the
    pack) or this sees the new place.
    """
    src_ov, offset = version.get("payload_ov"), version.get("offset")
    if src_ov is None or offset is None:
        return version
    source = await repo.find_version(version_id(tenant, str(version["id"]), int(src_ov)))
    if source is None or (source.get("key"), source.get("offset")) == (version["key"], offset):
        return version
    if source.get("offset") is None or source.get("sha256") != version.get("sha256"):
        return version  # not the same payload any more: nothing to follow
    old = (str(version["key"]), int(offset))
    new = (str(source["key"]), int(source["offset"]))
    if not await repo.repoint_payload("ver", str(version["_id"]), old, new):
        # Someone else (the claim's writer, or a roll-forward) moved it first.
        fresh = await repo.find_version(str(version["_id"])) or {}
        version.update({k: fresh.get(k, version.get(k)) for k in ("key", "offset", "length")})
        return version
    version.update(key=new[0], offset=new[1], length=source.get("length"))
    return version


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


async def adopt_create(
    repo: RecordRepo, tenant: str | None, item_id: str, settle_us: int
) -> Doc | None:
    """Publish a creation whose writer stopped between claim and head insert.

    Only claims older than ``settle_us`` are adopted (:func:`settle_age_us`), so a creator
    that is merely slow is never overtaken. The creation commits now.
    """
    pending = await repo.find_version(version_id(tenant, item_id, 0))
    claimed = 0 if pending is None else int(pending.get("claim_us") or 0)
    if pending is None or claimed > now_us() - settle_us:
        return None
    hid = head_id(tenant, item_id)
    try:
        await repo.insert_head(head_from_version(pending, hid, max(now_us(), claimed + 1)))
    except DuplicateKeyError:
        return None
    return pending


async def publish_claim(
    repo: RecordRepo,
    tenant: str | None,
    item_id: str,
    head_ov: int,
    *,
    lease_token: str | None = None,
    fence: int | None = None,
) -> Doc | None:
    """Move the head from ``head_ov`` to the claimed version ``head_ov + 1``, if both hold;
    the version it published (``None`` when it did not).

    It commits now, not at its writer's claim: reads made since the claim did not see
    it, so its commit time must be later than all of them. The compare-and-swap is the
    one writers use, so it never overwrites newer work.
    """
    pending = await repo.find_version(version_id(tenant, item_id, head_ov + 1))
    if pending is None:
        return None
    pending = await follow_moved_payload(repo, tenant, pending)
    hid = head_id(tenant, item_id)
    at = max(now_us(), int(pending["prev_at"]) + 1, int(pending.get("claim_us") or 0) + 1)
    head = head_from_version(pending, hid, at)
    if fence is not None:
        head["lease_fence"] = fence
    return pending if await repo.move_head(hid, head_ov, head, lease_token=lease_token) else None
