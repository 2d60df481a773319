"""Process helpers the bench scripts share: a free port, waiting for a server, spawning one.

Imported as ``from _procs import ...``: the scripts run as ``python bench/<script>.py``, which puts this
folder first on ``sys.path``. Kept light (standard library only; httpx imported when an HTTP
readiness check is asked for) so that importing it does not move a script's own measurements.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

POLL_SECONDS = 0.05


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_alive(process: subprocess.Popen[bytes] | None, what: str) -> None:
    if process is not None and process.poll() is not None:
        raise SystemExit(f"{what}: the process exited with code {process.returncode} before it was ready")


def wait_port(port: int, timeout: float = 30, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once something accepts connections on ``port``; ``SystemExit`` after ``timeout`` seconds
    (or as soon as ``process``, the server being waited for, has exited)."""
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(process, f"port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise SystemExit(f"nothing listening on port {port} after {timeout:g} s")
        time.sleep(POLL_SECONDS)


def wait_ready(url: str, timeout: float = 30, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once ``url`` answers 200; ``SystemExit`` after ``timeout`` seconds (or as soon as
    ``process`` has exited). Polls every 0.1 s."""
    import httpx

    deadline = time.monotonic() + timeout
    status: int | str = "no answer"
    while True:
        _check_alive(process, url)
        try:
            status = httpx.get(url, timeout=1).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        if status == 200:
            return
        if time.monotonic() >= deadline:
            raise SystemExit(f"{url} not ready after {timeout:g} s (last answer: {status})")
        time.sleep(0.1)


def spawn(
    args: list[str],
    port: int,
    env: dict[str, str] | None = None,
    *,
    timeout: float = 30,
    ready_url: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` (output discarded, ``env`` added to this environment) and wait until it listens
    on ``port``, or until ``ready_url`` answers 200 when given. On a timeout the process is killed and
    ``SystemExit`` names the command."""
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    try:
        if ready_url is None:
            wait_port(port, timeout, process)
        else:
            wait_ready(ready_url, timeout, process)
    except BaseException as exc:  # a timeout, or Ctrl-C while waiting: no server left behind
        process.kill()
        process.wait()
        if isinstance(exc, SystemExit):
            command = " ".join([os.path.basename(args[0]), *args[1:]])
            raise SystemExit(f"{command}: {exc}") from None
        raise
    return process
