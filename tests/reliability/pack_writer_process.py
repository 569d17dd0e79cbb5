"""A writer process that creates records without pause, with batching on (helper of
``test_pack_crash.py``), until it is killed.

Usage::

    python pack_writer_process.py CONFIG.json DB PREFIX CONCURRENCY

Creates records ``<PREFIX>-<n>`` (n = 0, 1, ...) with :func:`data_for` as their data,
``CONCURRENCY`` at a time. Prints ``SENT <id>`` before a create starts and ``ACK <id>``
once it returned (each line flushed), ``ERROR <id> <exception>`` if it failed. The test
SIGKILLs the process while packs are in flight. It also exits when its stdin reaches end
of file, so it never outlives the test process.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
from typing import Any

from chronos_async import Chronos, ChronosConfig, Collection


def data_for(item_id: str) -> dict[str, Any]:
    """The data record ``item_id`` is created with: 1 KB, or 20 KB for every 7th (read
    back from the store by range, above the inline limit)."""
    n = int(item_id.rsplit("-", 1)[1])
    size = 20_000 if n % 7 == 0 else 1000
    return {"id": item_id, "n": n, "pad": (item_id * (size // len(item_id) + 1))[:size]}


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()
    os._exit(3)


async def _worker(users: Collection, prefix: str, numbers: itertools.count[int]) -> None:
    while True:
        item_id = f"{prefix}-{next(numbers)}"
        _say(f"SENT {item_id}")
        try:
            await users.create(data_for(item_id), id=item_id, actor="pack-writer")
        except Exception as exc:  # reported to the test, which fails on it
            _say(f"ERROR {item_id} {type(exc).__name__}: {exc}")
        else:
            _say(f"ACK {item_id}")


async def main(config: ChronosConfig, db: str, prefix: str, concurrency: int) -> None:
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db)
        _say("OPEN")
        numbers = itertools.count()
        await asyncio.gather(*(_worker(users, prefix, numbers) for _ in range(concurrency)))


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    config_path, db_name, id_prefix, width = sys.argv[1:5]
    asyncio.run(main(ChronosConfig.from_file(config_path), db_name, id_prefix, int(width)))
