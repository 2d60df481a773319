"""Cold start, side by side in one run: modelbus with every plugin installed vs ``import litellm``.

Each row is the median wall time of fresh interpreters (``python -c ...``), so it includes interpreter
start-up; the first row is that floor. litellm is installed into its own venv (bench/.venv-litellm)
on first use so that it cannot slow down or change the modelbus environment.

    python bench/startup.py [--runs 15] [--no-litellm]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
LITELLM_VENV = HERE / ".venv-litellm"


def timed(python: str, code: str, runs: int) -> float:
    subprocess.run([python, "-c", code], check=True, capture_output=True)  # warm the OS page cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def litellm_python() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        print("# installing litellm into bench/.venv-litellm (first run only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "litellm"], capture_output=True, text=True
        )
        if result.returncode != 0:
            print(f"# could not install litellm: {result.stderr.strip()[-300:]}")
            return None
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    python = sys.executable

    from importlib import metadata

    plugins = sorted(ep.name for ep in metadata.entry_points(group="modelbus"))
    first_model = (
        "import modelbus; c = modelbus.Client(); m = c.models(); "
        "assert m, 'no models'; c.resolve(m[0].full_id)"
    )
    rows = [
        ("python -c pass (interpreter floor)", python, "pass"),
        ("import modelbus; modelbus.Client()", python, "import modelbus; modelbus.Client()"),
        ("... + load all plugins, resolve a model", python, first_model),
    ]
    litellm = None if args.no_litellm else litellm_python()
    if litellm:
        rows.append(("import litellm", litellm, "import litellm"))

    print(
        f"# cold start, median of {args.runs} fresh interpreters; {len(plugins)} modelbus plugins installed: "
        f"{', '.join(plugins)}"
    )
    results = {}
    for label, interpreter, code in rows:
        results[label] = timed(interpreter, code, args.runs)
    client_time = results["import modelbus; modelbus.Client()"]
    for label, seconds in results.items():
        ratio = f"{seconds / client_time:6.2f}x" if seconds else ""
        print(f"{label:<42} {seconds * 1000:8.1f} ms  {ratio}")
    target = "met" if client_time < 0.150 else "MISSED"
    print(f"# target: import modelbus; modelbus.Client() under 150 ms -> {target}")


if __name__ == "__main__":
    main()
