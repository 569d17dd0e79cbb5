"""A writer process that stops dead at a pipeline checkpoint (helper of ``test_faults.py``).

Also home of :func:`config_json` (a config as a file other processes can load).

Usage::

    python writer_process.py CONFIG.json DB COLLECTION PLAN.json

``PLAN.json`` is a list of writes, run concurrently::

    [{"op": "update" | "create", "id": "...", "data": {...}, "expected_ov": 0,
      "point": "stored" | "claimed" | ...}, ...]

Each write blocks forever when it reaches its ``point``, after printing
``AT <point> <id>`` (flushed). Other lines: ``OPEN`` once the store is open, ``DONE <id>``
when a write finished without reaching its point, ``ERROR <id> <exception>`` when it
failed. The test reads these lines and then SIGKILLs the process: a writer that died
between two steps of the commit protocol.

The process also exits when its stdin reaches end of file, so it never outlives the test
process that started it (that keeps a pipe to its stdin open).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from chronos_async import Chronos, ChronosConfig, Collection
from chronos_async._checkpoints import CheckpointInfo


def config_json(config: ChronosConfig) -> str:
    """``config`` as JSON text that ``ChronosConfig.from_file`` loads back unchanged.

    Dumps mask secrets (URI passwords, S3 keys); this is the one explicit way to get them.
    """
    return config.to_json(reveal_secrets=True)


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()  # returns at end of file: the test process closed the pipe
    os._exit(3)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _write(users: Collection, step: dict[str, Any]) -> None:
    try:
        if step["op"] == "create":
            await users.create(step["data"], id=step["id"], actor="doomed-writer")
        else:
            await users.update(
                step["id"], step["data"], expected_ov=step["expected_ov"], actor="doomed-writer"
            )
    except Exception as exc:  # reported to the test, which fails on it
        _say(f"ERROR {step['id']} {type(exc).__name__}: {exc}")
    else:
        _say(f"DONE {step['id']}")


async def main(config: ChronosConfig, db: str, collection: str, plan: list[dict[str, Any]]) -> None:
    stops = {step["id"]: step["point"] for step in plan}

    async def stop_dead(point: str, info: CheckpointInfo) -> None:
        if stops.get(info.id) == point:
            _say(f"AT {point} {info.id}")
            await asyncio.Event().wait()  # until SIGKILL

    async with Chronos(config) as chronos:
        users = chronos.collection(collection, db=db)
        _say("OPEN")
        with chronos.checkpoints.hook(stop_dead):
            await asyncio.gather(*(_write(users, step) for step in plan))


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    config_path, db_name, collection_name, plan_path = sys.argv[1:5]
    asyncio.run(
        main(
            ChronosConfig.from_file(config_path),
            db_name,
            collection_name,
            json.loads(Path(plan_path).read_text()),
        )
    )
