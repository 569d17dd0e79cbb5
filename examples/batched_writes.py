"""Group commit into packs: many concurrent writes, few object-store PUTs.

python examples/batched_writes.py

Starts a local stack with SeaweedFS (S3), writes 1,000 small records from 64 tasks with
``write_optimization.batch_s3`` on, reads one back (a ranged GET of its pack), gets a
presigned URL for it, and prints what the pack writer did.
"""

from __future__ import annotations

import asyncio

from chronos_async import Chronos
from chronos_async.embedded import LocalStack


async def main() -> None:
    async with LocalStack() as stack:
        config = stack.config(
            write_optimization={"batch_s3": True, "batch_window_ms": 25},
            # Payloads up to this size are also kept on the head; 0 makes every read
            # below go to the store, to show the ranged GET.
            limits={"inline_payload_bytes": 0},
        )
        async with Chronos(config) as chronos:
            events = chronos.collection("events", db="batching")
            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in range(1000):
                queue.put_nowait(n)
            ids: list[str] = []

            async def writer() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    result = await events.create({"n": n, "kind": "click"}, actor="demo")
                    ids.append(result.id)

            await asyncio.gather(*(writer() for _ in range(64)))
            item = await events.get_latest(ids[0], presign=True)
            assert item is not None
            print("read back:", item.data, "presigned URL:", bool(item.urls))
            packs = chronos.stats().packs
            print(
                f"{packs.packed + packs.alone} payloads: {packs.alone} stored alone, "
                f"{packs.packed} in {packs.packs} packs "
                f"({packs.payloads_per_pack:.1f} per pack); PUTs saved: {packs.puts_saved}"
            )


if __name__ == "__main__":
    asyncio.run(main())
