"""What the command-line commands share: loading a config, checking a target, and output
(tables for people, ``--json`` for scripts, progress bars only on a terminal)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from chronos_async import Chronos, ChronosConfig

__all__ = [
    "UsageError",
    "check_target",
    "int_at_least",
    "jsonable",
    "load_config",
    "print_json",
    "print_table",
    "progress_bar",
    "without_worker",
]


class UsageError(Exception):
    """A command cannot run as asked (exit status 2): an unknown database, a bad option."""


def without_worker(config: ChronosConfig) -> ChronosConfig:
    """``config`` with the fallback worker's ``auto_start`` off: a command inspects or
    repairs, and a CLI process draining the queue would be a surprise."""
    from chronos_async import ChronosConfig

    section = config.fallback
    if section is None or not section.enabled or not section.auto_start:
        return config
    quiet = section.model_copy(update={"auto_start": False}).model_dump(mode="json", by_alias=True)
    return ChronosConfig.load({**config.to_dict(reveal_secrets=True), "fallback": quiet})


def load_config(path: str) -> ChronosConfig:
    """The config in ``path``, :func:`without_worker`."""
    from chronos_async import ChronosConfig

    return without_worker(ChronosConfig.from_file(path))


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


async def check_target(chronos: Chronos, db: str | None, collection: str | None) -> None:
    """Raise :class:`UsageError` unless ``db`` (and ``collection`` in it) exist on some
    backend: a typo must not read as "nothing wrong"."""
    if db is None:
        if collection is not None:
            raise UsageError("--collection needs --db")
        return
    found_db = False
    for backend in chronos.backends:
        if db not in await backend.client.list_database_names():
            continue
        found_db = True
        if collection is None:
            return
        if f"{collection}_head" in await backend.client[db].list_collection_names():
            return
    if not found_db:
        raise UsageError(f"no database {db!r} on any backend")
    raise UsageError(f"no collection {collection!r} in database {db!r}")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: dataclasses become objects, datetimes ISO-8601 text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "model_dump"):  # a pydantic model (typed collections)
        return value.model_dump(mode="json")
    return value


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(orjson.dumps(jsonable(value), option=orjson.OPT_INDENT_2).decode() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, (dict, list, tuple)):
        return orjson.dumps(jsonable(value)).decode()
    return str(value)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table on stdout. On a terminal it fits the window (long cells fold); in a pipe
    or a file every row stays on one line, so ``grep`` finds whole ids."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    terminal = sys.stdout.isatty()
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, overflow="fold" if terminal else "ignore", no_wrap=not terminal)
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    Console(highlight=False, width=None if terminal else 100_000).print(table)


@contextlib.contextmanager
def progress_bar(description: str, *, quiet: bool) -> Iterator[Callable[[int, int | None], None]]:
    """``advance(done, total)`` updates a progress bar on stderr; silent when ``quiet`` or
    when stderr is not a terminal (scripts, pipes, CI logs)."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance
