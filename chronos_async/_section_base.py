"""The base of every config section, and the readable message of a config error.

The sections themselves live in :mod:`._sections` (infrastructure: stores, routing,
deadlines, leases, limits...) and :mod:`._sections_data` (what is stored and how it is
kept: collection maps, retention, rollup, counter rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import pydantic
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from chronos_async._errors import ConfigError

__all__ = ["Section", "describe_config_errors"]


def describe_config_errors(exc: pydantic.ValidationError) -> str:
    """One readable message per problem, naming the key path; never echoes secrets."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown configuration key {where!r}")
        else:
            lines.append(f"{where}: {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)


class Section(BaseModel):
    """Base of every config section: frozen, strict about unknown keys, camelCase aliases.

    ``model_copy(update=...)`` validates: pydantic's own copy sets the values as given,
    so a dict where a section belongs (``collection_maps={"users": {...}}``) would only
    fail later, far from the mistake. Here the updated copy is validated like a freshly
    loaded config: dicts become sections, and any problem raises :class:`ConfigError` at
    once, naming the key.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
    )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with the fields in ``update`` (snake_case or camelCase names) changed,
        validated as a whole: :class:`ConfigError` if the result is not a valid config.

        Example::

            config = config.model_copy(
                update={"collection_maps": {"users": {"indexed_props": ["email"]}}}
            )
            assert isinstance(config.collection_maps["users"], CollectionMap)
        """
        if not update:
            return super().model_copy(deep=deep)
        # Only the fields that were set, so defaults stay defaults (``model_fields_set``).
        data: dict[str, Any] = {name: getattr(self, name) for name in self.model_fields_set}
        names = {f.alias: name for name, f in type(self).model_fields.items() if f.alias}
        # A camelCase key replaces its field (both at once would be an unknown key).
        data.update({names.get(key, key): value for key, value in update.items()})
        try:
            copy = type(self).model_validate(data)
        except pydantic.ValidationError as exc:
            raise ConfigError(describe_config_errors(exc)) from None
        return copy.model_copy(deep=True) if deep else copy
