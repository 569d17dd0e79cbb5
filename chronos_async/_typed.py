"""Typed collections: a pydantic model in, the same model out (pure, no I/O).

``chronos.collection("users", db="app", model=User)`` gives a ``Collection[User]``. It
stores what an untyped collection stores, a JSON object, so typed and untyped handles
read and write the same records:

* A write given a ``User`` stores its ``model_dump(mode="json", by_alias=True,
  round_trip=True)``: pydantic turns Decimal, datetime, UUID, enums and nested models
  into JSON values exactly as it does for its own JSON. ``by_alias`` and ``round_trip``
  make that dump something the model validates back: aliased fields go under their
  alias, computed fields are left out, ``Json[...]`` fields stay text. The dump is made
  with ``User``'s serializer, as pydantic dumps a field declared ``User``: an instance
  of a subclass stores ``User``'s fields only. An instance is not validated again
  (pydantic did when it was built).
* A write given a dict validates it into a ``User`` first and stores that model's dump,
  so a dict and the equal instance store the same bytes, and a dict the model refuses is
  refused before anything is written.
* A read validates the stored object with ``User.model_validate_json``. The stored data
  is JSON, and JSON mode is the one in which pydantic accepts its own dump back (a
  ``strict`` model refuses ``"2026-01-01T00:00:00Z"`` for a datetime in Python mode).
* Whatever fails raises :class:`~chronos_async.ModelValidationError`, naming the record
  and version on a read; pydantic's input values are left out of it, since the payload
  may hold personal data.

The untyped codec (``model=None``) passes every value through untouched: an untyped
collection behaves exactly as it did before typed collections existed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Generic, cast

import orjson
import pydantic

from chronos_async._errors import ModelValidationError, ValidationError
from chronos_async._models import DataT, Item, Page

__all__ = ["ModelCodec", "check_model"]

#: A message names at most this many of pydantic's problems (``errors`` has them all).
_MAX_LISTED = 5


def check_model(model: object) -> type[pydantic.BaseModel] | None:
    """``model`` when it is ``None`` or a pydantic model class; ValidationError otherwise."""
    if model is None or (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
        return model
    raise ValidationError(f"model must be a pydantic BaseModel subclass, not {model!r}")


def _problems(exc: pydantic.ValidationError) -> tuple[list[dict[str, Any]], str]:
    """pydantic's problems without their input values, and a one-line summary of them."""
    errors: list[dict[str, Any]] = [
        dict(e) for e in exc.errors(include_url=False, include_input=False)
    ]
    listed = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
        for e in errors[:_MAX_LISTED]
    ]
    more = len(errors) - _MAX_LISTED
    return errors, "; ".join(listed) + (f" (and {more} more)" if more > 0 else "")


class ModelCodec(Generic[DataT]):
    """How one collection handle turns its callers' values into stored data and back.

    ``where(item_id)`` names a record in messages (the scope's ``where``).
    """

    __slots__ = ("model", "where")

    def __init__(self, model: type[pydantic.BaseModel] | None, where: Callable[[str], str]) -> None:
        self.model = model
        self.where = where

    def dump(self, value: object) -> object:
        """The data a write stores for ``value`` (a model instance or a dict)."""
        model = self.model
        if model is None:
            return value
        if not isinstance(value, model):
            try:
                value = model.model_validate(value)
            except pydantic.ValidationError as exc:
                errors, summary = _problems(exc)
                raise ModelValidationError(
                    f"the data is not a valid {model.__name__}: {summary}",
                    model=model,
                    errors=errors,
                ) from None
        return model.__pydantic_serializer__.to_python(
            value, mode="json", by_alias=True, round_trip=True
        )

    def check(self, data: dict[str, Any], item_id: str) -> None:
        """Refuse data a write would store (an enrich's merge) that the model would not
        read back."""
        self._validate(data, item_id, None)

    def _validate(self, data: dict[str, Any], item_id: str, ov: int | None) -> Any:
        model = self.model
        if model is None:
            return data
        try:
            return model.model_validate_json(orjson.dumps(data))
        except pydantic.ValidationError as exc:
            errors, summary = _problems(exc)
            what = self.where(item_id) + (" (the merged result)" if ov is None else f" ov={ov}")
            raise ModelValidationError(
                f"{what} does not validate as {model.__name__}: {summary}",
                model=model,
                id=item_id,
                ov=ov,
                errors=errors,
            ) from None

    def projection(self, projection: Sequence[str] | None) -> Sequence[str] | None:
        """``projection``, refused on a typed collection (a part of a record would not
        validate as the model)."""
        if projection is not None and self.model is not None:
            raise ValidationError(
                f"a collection typed with {self.model.__name__} reads whole records: use "
                "an untyped handle (chronos.collection(name, db=...)) to read with a "
                "projection"
            )
        return projection

    def item(self, item: Item[Any]) -> Item[DataT]:
        """``item`` with its data validated into the model (untouched when untyped)."""
        if self.model is None:
            return cast("Item[DataT]", item)
        return replace(item, data=self._validate(item.data, item.id, item.ov))

    def maybe(self, item: Item[Any] | None) -> Item[DataT] | None:
        """:meth:`item`, passing ``None`` through."""
        return None if item is None else self.item(item)

    def items(self, items: Iterable[Item[Any]]) -> list[Item[DataT]]:
        """:meth:`item` of each of ``items``."""
        return [self.item(one) for one in items]

    def page(self, page: Page[Any]) -> Page[DataT]:
        """``page`` with every item's data validated into the model."""
        if self.model is None:
            return cast("Page[DataT]", page)
        return Page(items=tuple(self.items(page.items)), next_cursor=page.next_cursor)
