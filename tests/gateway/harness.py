"""Run the real gateway on a real port, in-process (uvicorn in a thread) or as a `modelbus serve` process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from modelbus.config import ModelbusConfig
from modelbus.gateway.app import create_app
from modelbus.gateway.settings import GatewaySettings

MASTER = "master-test-key-0123456789"
UPSTREAM_KEY = "sk-upstream-provider-key-abcdef123456"


def provider_config(upstream: Any, **extra: Any) -> dict[str, Any]:
    """Config whose providers all point at one FakeUpstream."""
    return {
        "providers": {
            "deepseek": {"api_key": UPSTREAM_KEY, "base_url": upstream.url},
            "openai": {"api_key": UPSTREAM_KEY, "base_url": upstream.url},
        },
        **extra,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"gateway at {url} did not become ready")


class GatewayThread:
    """`create_app` served by uvicorn on a free port in a background thread."""

    def __init__(self, config: dict[str, Any], **settings: Any) -> None:
        self.config = ModelbusConfig.from_dict(config, source="(test)")
        self.settings = GatewaySettings(**{"master_key": MASTER, "log_requests": True, **settings})
        self.app = create_app(self.config, self.settings)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5
            )
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service(self) -> Any:
        return self.app.state.gateway.svc

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> GatewayThread:
        self.thread.start()
        wait_ready(self.url)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {MASTER}"}, timeout=30, **kw
        )

    def create_key(self, **fields: Any) -> str:
        response = self.admin("POST", "/admin/keys", json=fields)
        assert response.status_code == 201, response.text
        return response.json()["key"]


class GatewayProcess:
    """`modelbus serve` as a separate process (for kill -9 and graceful-shutdown tests)."""

    def __init__(self, config_file: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.config_file = config_file
        self.env = {
            **os.environ,
            "MODELBUS_CONFIG": str(config_file),
            "MODELBUS_MASTER_KEY": MASTER,
            "MODELBUS_PORT": str(self.port),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = config_file.with_suffix(".log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelbus", "serve"], env=self.env, stdout=handle, stderr=handle
        )
        wait_ready(self.url)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout)
