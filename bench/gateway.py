"""Gateway throughput and latency, side by side in one run (needs `wrk`: apt-get install wrk).

Targets, each in its own process, all in front of one FakeUpstream answering after 20 ms:

  direct       the FakeUpstream itself
  passthrough  a bare Starlette + aiohttp proxy (bench/passthrough.py): the floor
  modelbus     `modelbus serve` with a virtual key, rate limits, wallet, budget, ledger, metrics and the
               JSON access log on (its output discarded, like the other targets')

Load comes from wrk (a separate process) at 1, 16 and 64 connections. Prints RPS, p50/p99 and the
latency each proxy adds; CPU per request, the target's CPU as a share of one core and how busy the
whole machine was (all cores); streaming time-to-first-token overhead; and the gateway's RSS after
10k requests and at the end.

    python bench/gateway.py [--duration 10] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _procs import free_port, spawn

HERE = Path(__file__).parent
BODY = {
    "model": "deepseek/deepseek-chat",
    "messages": [{"role": "user", "content": "Say hello in five words."}],
}
MASTER = "bench-master-key-0123456789"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_ticks() -> tuple[int, int]:
    """(all, idle) CPU ticks of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, connections: int, duration: int, headers: dict[str, str], body: dict) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    header_lines = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
        f'wrk.headers["Content-Type"] = "application/json"\n{header_lines}'
    )
    result = subprocess.run(
        [
            "wrk",
            f"-t{min(connections, 2)}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    script.unlink()
    out = result.stdout

    def millis(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "rps": rps,
        "p50": millis("50%"),
        "p99": millis("99%"),
        "non2xx": int(errors.group(1)) if errors else 0,
        "requests": total,
    }


def ttft(url: str, headers: dict[str, str], samples: int) -> float:
    """Median seconds to the first content event of a streamed chat."""
    values = []
    with httpx.Client(timeout=30) as client:
        for _ in range(samples):
            start = time.perf_counter()
            with client.stream("POST", url, headers=headers, json={**BODY, "stream": True}) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and '"content"' in line and '"content":""' not in line:
                        values.append(time.perf_counter() - start)
                        break
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--latency", type=float, default=0.02, help="upstream latency in seconds")
    parser.add_argument("--connections", default="1,16,64")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="modelbus-bench-"))
    ports = {name: free_port() for name in ("upstream", "passthrough", "modelbus")}
    upstream_url = f"http://127.0.0.1:{ports['upstream']}"
    processes = []
    try:
        processes.append(
            spawn(
                [
                    sys.executable,
                    "-m",
                    "modelbus.testing.fake_upstream",
                    "--port",
                    str(ports["upstream"]),
                    "--latency",
                    str(args.latency),
                    "--event-delay",
                    "0.002",
                ],
                ports["upstream"],
            )
        )
        processes.append(
            spawn(
                [
                    sys.executable,
                    str(HERE / "passthrough.py"),
                    "--port",
                    str(ports["passthrough"]),
                    "--upstream",
                    upstream_url,
                ],
                ports["passthrough"],
            )
        )
        config = tmp / "config.toml"
        config.write_text(
            f'[providers.deepseek]\napi_key = "sk-bench"\nbase_url = "{upstream_url}"\n'
            f'[gateway]\ndatabase_url = "sqlite:///{tmp / "ledger.db"}"\n'  # defaults: JSON access log on
        )
        gateway = spawn(
            [sys.executable, "-m", "modelbus", "serve", "--port", str(ports["modelbus"])],
            ports["modelbus"],
            env={"MODELBUS_CONFIG": str(config), "MODELBUS_MASTER_KEY": MASTER},
        )
        processes.append(gateway)
        admin = {"Authorization": f"Bearer {MASTER}"}
        base = f"http://127.0.0.1:{ports['modelbus']}"
        key = httpx.post(
            base + "/admin/keys",
            headers=admin,
            json={"team": "bench", "rpm": 10_000_000, "tpm": 10_000_000_000, "budget_usd": "1000000"},
        ).json()["key"]
        httpx.post(base + "/admin/teams/bench/wallet", headers=admin, json={"amount_usd": "1000000"})
        targets = {
            "direct": (upstream_url + "/chat/completions", {}),
            "passthrough": (f"http://127.0.0.1:{ports['passthrough']}/v1/chat/completions", {}),
            "modelbus": (base + "/v1/chat/completions", {"Authorization": f"Bearer {key}"}),
        }
        # warm up and check every target answers
        for url, headers in targets.values():
            for _ in range(20):
                response = httpx.post(url, headers=headers, json=BODY, timeout=30)
                response.raise_for_status()
        rss_start = rss_mb(gateway.pid)
        print(
            f"# gateway benchmark: upstream latency {args.latency * 1000:.0f} ms, {args.duration}s per cell, "
            f"wrk load from a separate process, {os.cpu_count()} CPUs"
        )
        print(
            f"{'conns':>5}  {'target':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} "
            f"{'vs passthrough':>14} {'CPU ms/req':>10} {'core %':>7} {'machine %':>9} {'non-2xx':>8}"
        )
        pids = {"direct": processes[0].pid, "passthrough": processes[1].pid, "modelbus": gateway.pid}
        served = 0
        rss_10k, served_10k = None, 0
        for connections in (int(c) for c in args.connections.split(",")):
            results = {}
            for name, (url, headers) in targets.items():
                pid = pids[name]
                cpu, ticks, started = cpu_seconds(pid), machine_ticks(), time.monotonic()
                results[name] = wrk(url, connections, args.duration, headers, BODY)
                used = cpu_seconds(pid) - cpu
                results[name]["cpu_ms"] = used * 1000 / max(results[name]["requests"], 1)
                # how busy the target process and the whole machine were: a single-process target at
                # ~100% of one core is CPU-bound even when the machine has a core to spare
                results[name]["core"] = 100 * used / (time.monotonic() - started)
                total, idle = (now - then for now, then in zip(machine_ticks(), ticks, strict=True))
                results[name]["machine"] = 100 * (total - idle) / max(total, 1)
            served += results["modelbus"]["requests"]
            if rss_10k is None and served >= 10_000:
                rss_10k, served_10k = rss_mb(gateway.pid), served
            for name, r in results.items():
                added = r["p50"] - results["direct"]["p50"]
                ratio = r["rps"] / results["passthrough"]["rps"]
                print(
                    f"{connections:>5}  {name:<12} {r['rps']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
                    f"{added:>9.2f}m {ratio:>13.2f}x {r['cpu_ms']:>10.3f} {r['core']:>7.0f} "
                    f"{r['machine']:>9.0f} {r['non2xx']:>8}"
                )
        direct_ttft = ttft(targets["direct"][0], {}, 50)
        proxy_ttft = ttft(targets["passthrough"][0], {}, 50)
        gateway_ttft = ttft(targets["modelbus"][0], targets["modelbus"][1], 50)
        print(
            f"# streaming TTFT (median of 50): direct {direct_ttft * 1000:.2f} ms, passthrough "
            f"{proxy_ttft * 1000:.2f} ms (+{(proxy_ttft - direct_ttft) * 1000:.2f}), modelbus "
            f"{gateway_ttft * 1000:.2f} ms (+{(gateway_ttft - direct_ttft) * 1000:.2f})"
        )
        # keep loading the gateway until it has served 10k and then 20k requests: flat RSS means the
        # second 10k add (next to) nothing to the first
        url, headers = targets["modelbus"]
        while served < 20_000:
            served += wrk(url, 16, 2, headers, BODY)["requests"]
            if rss_10k is None and served >= 10_000:
                rss_10k, served_10k = rss_mb(gateway.pid), served
        rss_end = rss_mb(gateway.pid)
        assert rss_10k is not None
        print(
            f"# gateway RSS: {rss_start:.1f} MB after warm-up, {rss_10k:.1f} MB after {served_10k} requests, "
            f"{rss_end:.1f} MB after {served} "
            f"({rss_end - rss_10k:+.1f} MB over the last {served - served_10k})"
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


if __name__ == "__main__":
    main()
