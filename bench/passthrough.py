"""The floor for bench/gateway.py: a bare Starlette + aiohttp passthrough proxy (no auth, no accounting).

python bench/passthrough.py --port 4100 --upstream http://127.0.0.1:4200
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def build(upstream: str) -> Starlette:
    session: aiohttp.ClientSession | None = None

    async def proxy(request: Request) -> Response:
        assert session is not None
        body = await request.body()
        response = await session.post(
            upstream + "/chat/completions", data=body, headers={"content-type": "application/json"}
        )
        if response.headers.get("content-type", "").startswith("text/event-stream"):

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in response.content.iter_any():
                        yield chunk
                finally:
                    response.release()

            return StreamingResponse(relay(), media_type="text/event-stream")
        data = await response.read()
        response.release()
        return Response(data, status_code=response.status, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0))
        yield
        await session.close()

    return Starlette(routes=[Route("/v1/chat/completions", proxy, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
