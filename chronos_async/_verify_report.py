"""What a verify finds: problems by kind, counts, and what reconcile may act on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from chronos_async._keys import NO_TENANT
from chronos_async.meta import RecordRepo
from chronos_async.storage import BlobStore

__all__ = [
    "BackendScan",
    "CollectionScan",
    "Problem",
    "PackUse",
    "ProblemKind",
    "ReferenceCheck",
    "Span",
    "VerifyProgress",
    "VerifyReport",
]

Doc = dict[str, Any]
ProblemKind = Literal[
    "ov_gap",
    "unpublished_claim",
    "head_mismatch",
    "cv_not_increasing",
    "at_not_increasing",
    "missing_payload",
    "checksum_mismatch",
    "head_without_versions",
    "versions_without_head",
    "orphan_payload",
    "missing_content",
    "orphan_content",
    "rollup_manifest",
    "counter_drift",
]
#: ``progress(collection, records_checked)``
VerifyProgress = Callable[[str, int], None]
#: Where a payload lies: ``(key, offset, length)``; offset and length only in a pack.
Span = tuple[str, int | None, int | None]


@dataclass(frozen=True, slots=True)
class Problem:
    """One invariant violation."""

    kind: ProblemKind
    db: str
    collection: str
    tenant: str | None
    id: str | None
    ov: int | None
    detail: str

    def __str__(self) -> str:
        tenant = f" tenant={self.tenant}" if self.tenant else ""
        where = f"{self.db}.{self.collection}{tenant} id={self.id} ov={self.ov}"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """All problems found, and how much was checked (``counts``)."""

    problems: tuple[Problem, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no invariant is violated."""
        return not self.problems


#: ``still_referenced(store, keys)``: the keys of ``keys`` (objects of ``store``) that
#: some version or head of any backend refers to (see
#: :func:`chronos_async._reconcile.referenced_keys`).
ReferenceCheck = Callable[[BlobStore, list[str]], Awaitable[set[str]]]


@dataclass(frozen=True, slots=True)
class PackUse:
    """How much of a pack object the versions still use (what compaction looks at)."""

    store: BlobStore
    key: str
    size: int
    live_bytes: int
    age_seconds: float

    @property
    def live_ratio(self) -> float:
        """The share of the pack's bytes some version uses."""
        return self.live_bytes / self.size if self.size else 0.0


@dataclass(slots=True)
class BackendScan:
    """One backend's part of a collection: what its records refer to, what to repair."""

    repo: RecordRepo
    store: BlobStore
    #: (tenant, id, head_ov) of claims old enough to roll forward
    stuck_claims: list[tuple[str, str, int]] = field(default_factory=list)
    #: (tenant, id) of ``ov=0`` claims whose creator died before inserting the head
    orphan_creates: list[tuple[str, str]] = field(default_factory=list)
    #: every payload key a version or head of this backend refers to
    referenced: set[str] = field(default_factory=set)
    #: (key, offset, length) -> (tenant, id, sha256, ov) of the payloads that must be in
    #: the store (offset and length are those of a pack member, else ``None``)
    to_hash: dict[Span, tuple[str, str, str, int]] = field(default_factory=dict)
    #: the tenants (as stored, ``NO_TENANT`` included) whose payload prefix is listed
    tenants: set[str] = field(default_factory=lambda: {NO_TENANT})
    #: content key -> (tenant, id, sha256, size, ov) of the content objects (externalized
    #: ``base64_props``) a version or head of this backend refers to
    content: dict[str, tuple[str, str, str, int, int]] = field(default_factory=dict)


@dataclass(slots=True)
class CollectionScan:
    """What a scan of one collection (over every backend that has it) found.

    ``orphans`` holds, per distinct payload store (by :attr:`BlobStore.identity`), the
    keys no version or head of any backend refers to and that are older than the grace
    period: what reconcile may remove, after checking each one again.
    """

    db: str
    name: str
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    backends: list[BackendScan] = field(default_factory=list)
    orphans: list[tuple[BlobStore, list[str]]] = field(default_factory=list)
    #: every referenced pack, with its live bytes (candidates for compaction)
    packs: list[PackUse] = field(default_factory=list)
    #: like ``orphans``, for the content objects of the content store (role "content")
    content_orphans: list[tuple[BlobStore, list[str]]] = field(default_factory=list)

    def add(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to ``counts[counter]``."""
        self.counts[counter] = self.counts.get(counter, 0) + n

    def problem(
        self, kind: ProblemKind, t: str, item_id: str | None, ov: int | None, why: str
    ) -> None:
        """Record a violation (``t`` is the tenant as stored)."""
        tenant = None if t == NO_TENANT else t
        self.problems.append(Problem(kind, self.db, self.name, tenant, item_id, ov, why))
