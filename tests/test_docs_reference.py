"""The docs site's configuration reference is generated from the model: every key of
every section appears, with its camelCase alias and default (docs/_hooks.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from chronos_async import ChronosConfig

HOOKS = Path(__file__).resolve().parents[1] / "docs" / "_hooks.py"


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", HOOKS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sections(hooks: ModuleType, model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    """Every config section reachable from ``model`` (into ``seen``)."""
    for info in model.model_fields.values():
        for sub in hooks._models_in(info.annotation):
            if sub not in seen:
                seen.add(sub)
                sections(hooks, sub, seen)


def test_every_key_of_every_section_is_in_the_reference() -> None:
    hooks = load_hooks()
    text = hooks.config_reference()
    models: set[type[BaseModel]] = {ChronosConfig}
    sections(hooks, ChronosConfig, models)
    assert len(models) > 10
    for model in models:
        for name, info in model.model_fields.items():
            assert f"| `{name}`" in text, (model.__name__, name)
            if info.alias and info.alias != name:
                assert f"(`{info.alias}`)" in text
    assert "| `batch_window_ms` (`batchWindowMs`) | `int` | `25` |" in text
    assert "### `write_optimization`" in text and "### `spaces_conns[]`" in text
    assert "``" not in text  # Sphinx markup became Markdown


def test_the_hook_replaces_only_its_marker() -> None:
    hooks = load_hooks()
    assert hooks.on_page_markdown("# Page\n") == "# Page\n"
    page = hooks.on_page_markdown(f"# Config\n\n{hooks.MARKER}\n")
    assert hooks.MARKER not in page and "### top level" in page
