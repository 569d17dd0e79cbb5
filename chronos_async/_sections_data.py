"""The config sections about the data: what a collection stores and how long it is kept.

Collection maps (indexed, required and externalized properties), version retention and
rollup, conditional counter rules and the development shadow copy. The sections about
the infrastructure (stores, routing, deadlines, leases, limits...) live in
:mod:`._sections`, which also re-exports these.
"""

from __future__ import annotations

import codecs
import re
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from chronos_async._content_paths import check_prop_paths
from chronos_async._section_base import Section

__all__ = [
    "Base64Prop",
    "CollectionMap",
    "CounterEvent",
    "CounterRule",
    "CounterRules",
    "DevShadowConfig",
    "RetentionConfig",
    "RollupConfig",
]


class _RetentionRule(Section):
    enabled: bool = False
    max_age: int = Field(default=90, gt=0)
    max_versions: int = Field(default=10, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "days" in data:
                data.setdefault("maxAge", data.pop("days"))
            if "maxPerItem" in data:
                data.setdefault("maxVersions", data.pop("maxPerItem"))
            # accepted by the original and never used: keep loading such files
            data.pop("weeks", None)
            data.pop("months", None)
        return data


class _CounterRetention(_RetentionRule):
    max_age: int = Field(default=365, gt=0)
    max_versions: int = Field(default=50, gt=0)


class RetentionConfig(Section):
    """How many versions per record the live version index keeps.

    ``ver`` (when ``enabled`` and ``ver.enabled``): the newest ``max_versions`` and those
    committed within ``max_age`` days stay in ``<coll>_ver``, "whichever limit is
    reached first"; older ones are rolled up into manifests by ``admin.rollup_now`` (or
    the background rollup), and every read still answers for them. Nothing is deleted:
    see ``admin.expire``. ``collection_maps.<name>.version_retention`` overrides ``ver``.
    (``counters`` is accepted for configs of the original.)
    """

    enabled: bool = False
    ver: _RetentionRule = Field(default_factory=_RetentionRule)
    counters: _CounterRetention = Field(default_factory=_CounterRetention)


class RollupConfig(Section):
    """Rollup of versions beyond their retention into manifests in the backups bucket.

    One manifest per record and ``manifest_period`` (UTC day, ISO week or month of the
    versions' commit times). With ``enabled`` and ``auto_schedule``, a background task
    of the ``Chronos`` instance runs rollup and prune every ``interval_seconds`` (one
    process at a time, by a lease); ``admin.rollup_now()`` works either way.
    """

    enabled: bool = False
    manifest_period: Literal["daily", "weekly", "monthly"] = "daily"
    auto_schedule: bool = True
    interval_seconds: int = Field(default=3600, ge=1)


class Base64Prop(Section):
    """A property holding base64 content that is stored outside the payload JSON.

    ``content_type`` is the type the content object is stored (and served) with; a text
    rendition (UTF-8, decoded with ``text_charset``) is stored too when
    ``preferred_text`` is set or the type is ``text/*`` (see the README, "Attachments").
    """

    content_type: str = Field(min_length=1)
    preferred_text: bool = False
    text_charset: str = "utf-8"

    @field_validator("text_charset")
    @classmethod
    def _charset(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text_charset {value!r}") from None
        return value


class _Validation(Section):
    required_indexed: list[str] = Field(default_factory=list)


class _VersionRetention(Section):
    """Per-collection bound of the live version index (overrides ``retention.ver``)."""

    days_in_index: int | None = Field(default=None, gt=0)
    max_versions_in_index: int | None = Field(default=None, gt=0)


_PROP_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*(\[\])?$")


class CollectionMap(Section):
    """Per-collection rules: which properties are indexed, required, externalized."""

    indexed_props: list[str] = Field(default_factory=list)
    base64_props: dict[str, Base64Prop] = Field(default_factory=dict)
    validation: _Validation = Field(default_factory=_Validation)
    version_retention: _VersionRetention | None = None
    #: An update, enrich or restore whose result equals the current version stores
    #: nothing and returns the current version with ``changed=False``.
    no_op_detection: bool = True

    @field_validator("indexed_props")
    @classmethod
    def _props(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _PROP_PATH.match(value):
                raise ValueError(f"invalid property path {value!r}")
        if len(set(values)) != len(values):
            raise ValueError("indexed_props has duplicates")
        return values

    @field_validator("base64_props")
    @classmethod
    def _base64_paths(cls, values: dict[str, Base64Prop]) -> dict[str, Base64Prop]:
        check_prop_paths(list(values))  # a ValidationError is a ValueError
        return values

    @model_validator(mode="after")
    def _required_are_indexed(self) -> CollectionMap:
        missing = [p for p in self.validation.required_indexed if p not in self.indexed_props]
        if missing:
            raise ValueError(f"required_indexed names props that are not indexed: {missing}")
        return self


CounterEvent = Literal["CREATE", "UPDATE", "DELETE", "RESTORE", "ENRICH"]
_RULE_NAME = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
_DOTTED_PATH = r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$"


class CounterRule(Section):
    """A conditional counter over a collection's writes or its current records.

    ``kind="events"`` (the original's counters) counts the writes whose record matches
    ``when``: for a write that deletes, the record as it was before it; ``on`` limits
    the kinds of write (all by default). ``kind="gauge"`` counts the records that match
    ``when`` now: a record that stops matching, or is deleted, leaves the count.

    ``when`` uses the operators of ``list_by_meta`` (equality, ``$eq``, ``$ne``, ``$in``,
    ``$nin``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$exists``, ``$and``, ``$or``) on
    dotted paths of the indexed props (``scope="meta"``) or of the whole record
    (``scope="payload"``). ``count_unique`` (events only) also counts the distinct
    values found at that path in the matching writes. ``collections`` limits the rule
    to those collection names (every collection by default).
    """

    name: str = Field(pattern=_RULE_NAME)
    kind: Literal["events", "gauge"] = "events"
    on: list[CounterEvent] | None = None
    scope: Literal["meta", "payload"] = "meta"
    when: dict[str, Any] = Field(default_factory=dict)
    count_unique: str | None = Field(default=None, pattern=_DOTTED_PATH)
    collections: list[str] | None = None

    @field_validator("when")
    @classmethod
    def _when(cls, value: dict[str, Any]) -> dict[str, Any]:
        from chronos_async.counters._predicate import Predicate  # its operators, checked

        Predicate.compile(value)
        return value

    @model_validator(mode="after")
    def _kind_fits(self) -> Self:
        if self.kind == "gauge" and self.on is not None:
            raise ValueError(
                f"counter rule {self.name!r}: a gauge counts records; it takes no 'on'"
            )
        if self.kind == "gauge" and self.count_unique is not None:
            raise ValueError(f"counter rule {self.name!r}: count_unique needs kind 'events'")
        return self


class CounterRules(Section):
    """The list of conditional counter rules (names are unique)."""

    rules: list[CounterRule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[CounterRule]) -> list[CounterRule]:
        names = [rule.name for rule in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"counter rule names must be unique: {dupes}")
        return rules


class DevShadowConfig(Section):
    """Keep a copy of the latest payload on the head (development aid)."""

    enabled: bool = False
    ttl_hours: int = Field(default=24, gt=0)
    max_bytes_per_doc: int | None = Field(default=None, gt=0)
