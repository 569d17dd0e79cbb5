"""A writer process for the counter tests: random writes until it is killed.

Usage::

    python counting_writer.py CONFIG.json DB SEED

It prints ``OPEN`` once open, then ``WROTE <n>`` after each write it finished. The
config holds a long ``debounce_counters_ms``: the increments of its writes are still in
memory when the test SIGKILLs it. It exits when its stdin reaches end of file, so it
never outlives the test process.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import threading
from pathlib import Path

from chronos_async import Chronos, ChronosConfig
from tests.counters.flipping import random_write


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()
    os._exit(3)


async def main(config_path: str, db: str, seed: int) -> None:
    config = ChronosConfig.from_file(Path(config_path))
    rng = random.Random(seed)
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db)
        print("OPEN", flush=True)
        n = 0
        while True:
            await random_write(users, rng)
            n += 1
            print(f"WROTE {n}", flush=True)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
