"""Commit times of versions, and which version was current at a given time (pure, no I/O).

A version's commit time is fixed when the head moves to it (see :mod:`._publish`), after
its version document was inserted, so the document cannot carry it. It is found where it
was written first:

- for the record's current version: the head's ``at``;
- for any older version ``k``: ``prev_at`` of version ``k + 1`` (each version records
  the commit time of the one before it, read from the head it replaced).

Version ``k + 1`` is claimed only after version ``k`` is published, so ``prev_at`` grows
with ``ov``: the versions with ``prev_at <= t``, newest first, start with the version
just after the answer to "what was current at ``t``", or with the answer itself.
:func:`pick_as_of` decides which from the head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["AsOf", "finalized", "is_young", "pick_as_of"]

Doc = dict[str, Any]


def finalized(version: Doc, at: int) -> Doc:
    """``version`` with its commit time ``at`` and the times derived from it filled in.

    ``created_us`` is the commit time of ``ov = 0`` (versions after the first carry it
    from the head they replaced); ``deleted_us`` is the commit time of a deletion.
    """
    out = dict(version)
    out["at"] = at
    if out.get("created_us") is None:
        out["created_us"] = at
    out["deleted_us"] = at if out.get("deleted") else None
    return out


def is_young(claim: Doc, now_us: int, commit_us: int) -> bool:
    """Whether an unpublished claim may still be published by its writer.

    Writers publish a claim within half the commit window or withdraw it; a claim older
    than the window belongs to a writer that stopped, and if it is ever published (rolled
    forward), that happens with a new commit time, later than now.
    """
    return now_us < int(claim.get("claim_us") or 0) + commit_us


@dataclass(frozen=True, slots=True)
class AsOf:
    """The answer to an as-of question.

    ``version`` is the version current at the time (its commit time filled in), or
    ``None`` when the record did not exist then. ``pending`` is an unpublished claim that,
    if its writer publishes it, would change the answer: the caller must wait for it
    while it is young (:func:`is_young`), and may ignore it afterwards.
    """

    version: Doc | None
    pending: Doc | None = None


def pick_as_of(head: Doc | None, candidates: Sequence[Doc], at_us: int) -> AsOf:
    """The version of a record current at ``at_us``.

    ``head`` is the record's head (``None`` when there is none), read *before*
    ``candidates``: the (at most two) versions with the latest ``prev_at <= at_us``,
    newest first (:meth:`RecordRepo.find_versions_before`).
    """
    if head is None:
        claim = next((c for c in candidates if int(c["ov"]) == 0), None)
        if claim is not None and int(claim.get("claim_us") or 0) <= at_us:
            # A creation in flight, claimed before ``at_us``: it commits after its claim.
            return AsOf(None, pending=claim)
        return AsOf(None)
    if not candidates:
        return AsOf(None)
    head_ov, head_at = int(head["ov"]), int(head["at"])
    top, rest = candidates[0], candidates[1:]
    before = rest[0] if rest else None
    top_ov = int(top["ov"])
    if top_ov > head_ov:
        # A claim on ``head_ov + 1`` whose predecessor (the head) committed by ``at_us``:
        # the head's version is the answer unless the claim commits by ``at_us`` too.
        current = finalized(before, head_at) if before is not None else None
        return AsOf(current, pending=top)
    if top_ov == head_ov and head_at <= at_us:
        return AsOf(finalized(top, head_at))
    # ``top`` committed after ``at_us`` (its successor's ``prev_at``, or the head's ``at``,
    # is later), and its predecessor committed at ``top["prev_at"] <= at_us``.
    if before is None:
        return AsOf(None)
    return AsOf(finalized(before, int(top["prev_at"])))
