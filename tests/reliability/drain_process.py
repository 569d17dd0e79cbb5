"""A process that drains the fallback queue (helper of ``test_fallback_outages.py``).

Usage::

    python drain_process.py CONFIG.json

Opens a :class:`Chronos` whose worker starts with it (``fallback.auto_start``), prints
``OPEN``, then every 50 ms ``APPLIED <n>`` (what its worker applied so far), and exits
with ``IDLE <n>`` once nothing is queued or running. The test may SIGKILL it in the
middle. It also exits when its stdin reaches end of file, so it never outlives the test.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

from chronos_async import Chronos, ChronosConfig


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()
    os._exit(3)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(config: ChronosConfig) -> None:
    async with Chronos(config) as chronos:
        _say("OPEN")
        worker = chronos.fallback._worker
        assert worker is not None
        while True:
            await asyncio.sleep(0.05)
            _say(f"APPLIED {worker.counts['applied']}")
            stats = await chronos.fallback.get_queue_stats()
            if stats.queued == stats.running == stats.spooled == 0:
                break
        _say(f"IDLE {worker.counts['applied']}")


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    asyncio.run(main(ChronosConfig.from_file(sys.argv[1])))
