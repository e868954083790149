"""A scripted HTTP server on loopback for client tests that need exact answers.

Each (method, path) has a queue of canned responses (the last one repeats); every request
is recorded with its form, query and headers. Used where the simulator cannot be told to
give one specific answer (a given token body, a refusal of credentials).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import msgspec
from aiohttp import web


@dataclass(frozen=True)
class Canned:
    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class Scripted:
    base_url: str = ""
    script: dict[tuple[str, str], list[Canned]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def add(self, method: str, path: str, *answers: Canned) -> None:
        self.script.setdefault((method, path), []).extend(answers)

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: str(v) for k, v in (await request.post()).items()}
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), form, dict(request.headers))
        )
        queue = self.script.get((request.method, request.path))
        if not queue:
            return web.json_response(
                {"errorCode": "CMN-102", "message": "not scripted"}, status=404
            )
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        body = b"" if answer.body is None else msgspec.json.encode(answer.body)
        return web.Response(
            status=answer.status,
            body=body,
            headers={"Content-Type": "application/json", **answer.headers},
        )


@asynccontextmanager
async def scripted_server() -> AsyncIterator[Scripted]:
    state = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base_url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()
