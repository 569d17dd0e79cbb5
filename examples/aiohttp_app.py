"""An aiohttp service with Chronos opened in a cleanup context.

python examples/aiohttp_app.py chronos.json
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

from aiohttp import web

from chronos_async import Chronos, ChronosConfig

CHRONOS = web.AppKey("chronos", Chronos)


def make_app(config: ChronosConfig) -> web.Application:
    """The application: one Chronos for its whole life, closed on shutdown."""

    async def chronos_context(app: web.Application) -> AsyncIterator[None]:
        async with Chronos(config) as chronos:
            app[CHRONOS] = chronos
            yield

    async def history(request: web.Request) -> web.Response:
        users = request.app[CHRONOS].collection("users", db="myapp")
        versions = [
            {"ov": v.ov, "op": v.op, "at": v.at.isoformat(), "actor": v.actor, "reason": v.reason}
            async for v in users.history(request.match_info["user_id"])
        ]
        return web.json_response(versions)

    app = web.Application()
    app.cleanup_ctx.append(chronos_context)
    app.router.add_get("/users/{user_id}/history", history)
    return app


if __name__ == "__main__":
    web.run_app(make_app(ChronosConfig.from_file(sys.argv[1])))
