"""mkdocs hooks: the configuration reference, generated from the pydantic model.

A page holding the line ``<!-- config-reference -->`` gets, in its place, one table per
config section: every key (snake_case and its camelCase alias), its type, its default and
the ``#:`` comment written above the field in the source. Nothing here is maintained by
hand, so the reference cannot drift from :class:`chronos_async.ChronosConfig`.
"""

from __future__ import annotations

import inspect
import re
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from chronos_async import ChronosConfig

__all__ = ["config_reference", "on_page_markdown"]

MARKER = "<!-- config-reference -->"
_FIELD = re.compile(r"^\s+(\w+)\s*:")


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """The ``#:`` comment lines above each field of ``model`` (its own source only)."""
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(model).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and pending:
            found[match.group(1)] = " ".join(pending)
        pending = []
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config sections an annotation holds (``X``, ``X | None``, ``list[X]``...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _type_text(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"Annotated\[(\w+), [^\]]*\]", r"\1", text)
    text = re.sub(r"typing\.|pydantic\.types\.|chronos_async\.[\w.]*?\.(?=_?[A-Z])", "", text)
    return text.replace("NoneType", "None")


def _prose(text: str) -> str:
    """Sphinx markup as Markdown: ``x`` and :class:`~a.b.X` become `x` and `X`."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([\w]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _default(info: Any) -> str:
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            return "(computed)"
    else:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(section defaults)"
    return f"`{value!r}`"


def _section(model: type[BaseModel], path: str, out: list[str], seen: set[type[BaseModel]]) -> None:
    comments: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if isinstance(cls, type) and issubclass(cls, BaseModel) and cls is not BaseModel:
            try:
                comments.update(_comments(cls))
            except (OSError, TypeError):
                continue
    title = f"`{path}`" if path else "top level"
    doc = _prose(inspect.getdoc(model) or "")
    out += [f"### {title}", "", doc, ""]
    out += ["| key (alias) | type | default | meaning |", "| --- | --- | --- | --- |"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        alias = f" (`{info.alias}`)" if info.alias and info.alias != name else ""
        kind = _type_text(info.annotation).replace("|", "\\|")
        meaning = _prose(comments.get(name, "")).replace("|", "\\|")
        out.append(f"| `{name}`{alias} | `{kind}` | {_default(info)} | {meaning} |")
        for sub in _models_in(info.annotation):
            if sub not in seen:
                seen.add(sub)
                suffix = "[]" if typing.get_origin(info.annotation) is list else ""
                if typing.get_origin(info.annotation) is dict:
                    suffix = ".<name>"
                nested.append((f"{path}.{name}{suffix}" if path else f"{name}{suffix}", sub))
    out.append("")
    for sub_path, sub in nested:
        _section(sub, sub_path, out, seen)


def config_reference() -> str:
    """The generated reference (Markdown)."""
    out: list[str] = []
    _section(ChronosConfig, "", out, {ChronosConfig})
    return "\n".join(out)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs hook: replace the marker with the generated reference."""
    if MARKER in markdown:
        return markdown.replace(MARKER, config_reference())
    return markdown
