"""Per-call client overhead, side by side in one run.

A FakeUpstream (OpenAI-compatible, fixed answer) runs in a separate process. Against it, the same
chat request is sent by:

  aiohttp      a bare aiohttp ClientSession call + json.loads of the body or of each
               stream event (the floor)
  httpx        httpx.AsyncClient on its default pool (httpcore)
  httpx+aio    httpx.AsyncClient over the httpx-aiohttp transport package
  modelbus     modelbus.AsyncClient: validation, hooks, translation, normalization, pricing

non-stream and stream (all chunks read), at 1, 16 and 64 concurrent callers. Prints p50/p99 per call,
throughput, and the p50 ratio to bare aiohttp. Run:  python bench/client_overhead.py [--latency 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from _procs import free_port, spawn
from httpx_aiohttp import AiohttpTransport

from modelbus import AsyncClient
from modelbus.providers import OpenAICompatibleProvider

MODELS_TOML = Path(__file__).with_name("bench_models.toml")


class BenchProvider(OpenAICompatibleProvider):
    name = "bench"
    display_name = "Bench"
    regions = {"default": ("http://127.0.0.1:1", "LOCAL")}
    models_file = str(MODELS_TOML)

    def model_table(self):  # the table lives next to this script
        from modelbus.types import load_model_table

        return load_model_table(MODELS_TOML, provider=self.name)


def start_upstream(port: int, latency: float) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "modelbus.testing.fake_upstream", "--port", str(port)]
    return spawn([*args, "--latency", str(latency)], port, timeout=10)


BODY = {"model": "bench-chat", "messages": [{"role": "user", "content": "Say hello in five words."}]}


async def run(call: Callable[[], Awaitable[None]], concurrency: int, total: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    for _ in range(min(20, total)):  # warm up connections and caches
        await call()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(
    url: str, concurrency: int, total: int, stream: bool
) -> dict[str, tuple[float, float, float]]:
    body = {**BODY, "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {})}
    payload = json.dumps(body).encode()
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    results: dict[str, tuple[float, float, float]] = {}

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def bare() -> None:
            async with session.post(url + "/chat/completions", data=payload, headers=headers) as response:
                if stream:  # the least any client does: split events and parse their JSON
                    async for line in response.content:
                        if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
                            json.loads(line[6:])
                else:
                    json.loads(await response.read())

        lat, wall = await run(bare, concurrency, total)
        results["aiohttp"] = (pct(lat, 0.5), pct(lat, 0.99), total / wall)

    for name, client in (
        ("httpx", httpx.AsyncClient(limits=httpx.Limits(max_connections=256))),
        (
            "httpx+aio",
            httpx.AsyncClient(transport=AiohttpTransport(limits=httpx.Limits(max_connections=256))),
        ),
    ):

        async def via_httpx(client: httpx.AsyncClient = client) -> None:
            if stream:
                async with client.stream(
                    "POST", url + "/chat/completions", content=payload, headers=headers
                ) as r:
                    async for _chunk in r.aiter_bytes():
                        pass
            else:
                response = await client.post(url + "/chat/completions", content=payload, headers=headers)
                response.json()

        lat, wall = await run(via_httpx, concurrency, total)
        results[name] = (pct(lat, 0.5), pct(lat, 0.99), total / wall)
        await client.aclose()

    client = AsyncClient(
        plugins=[BenchProvider()],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"bench": {"api_key": "bench", "base_url": url}},
    )
    messages = BODY["messages"]

    async def via_modelbus() -> None:
        if stream:
            response = await client.chat("bench/bench-chat", messages, stream=True)
            async for _chunk in response:
                pass
        else:
            await client.chat("bench/bench-chat", messages)

    lat, wall = await run(via_modelbus, concurrency, total)
    results["modelbus"] = (pct(lat, 0.5), pct(lat, 0.99), total / wall)
    await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.0, help="upstream latency in seconds (default 0)")
    parser.add_argument("--requests", type=int, default=1000, help="calls per cell")
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args()
    port = free_port()
    upstream = start_upstream(port, args.latency)
    url = f"http://127.0.0.1:{port}"
    print(
        f"# client overhead vs bare aiohttp; upstream latency {args.latency * 1000:.0f} ms; "
        f"{args.requests} calls per cell; {os.cpu_count()} CPUs; python {sys.version.split()[0]}"
    )
    print(
        f"{'mode':<7} {'conc':>4}  {'client':<10} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50 ratio':>9}"
    )
    try:
        for stream in (False, True):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                results = asyncio.run(bench(url, concurrency, args.requests, stream))
                floor = results["aiohttp"][0]
                for name, (p50, p99, rps) in results.items():
                    mode = "stream" if stream else "plain"
                    print(
                        f"{mode:<7} {concurrency:>4}  {name:<10} {p50 * 1000:>8.2f} "
                        f"{p99 * 1000:>8.2f} {rps:>8.0f} {p50 / floor:>8.2f}x"
                    )
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main()
