"""The sandbox the docs samples run in (see markdown_samples.py for what each fence language means).

The samples run against a sandbox that plays the outside world, offline:

* ``FakeUpstream`` (modelbus's local HTTP server) with the deterministic OpenAI-compatible responder
  stands in for DeepSeek and OpenAI: ``DEEPSEEK_BASE_URL`` / ``OPENAI_BASE_URL`` point the real installed
  plugins at it, and their ``*_API_KEY`` variables hold a test key.
* When a page's samples talk to a gateway (they mention ``http://localhost:4000``), a real gateway is
  started on a free port with a SQLite ledger; ``http://localhost:4000`` in the samples is replaced by
  its URL, ``mb-...`` by a virtual key it issued, ``$MODELBUS_MASTER_KEY`` is its master key and
  ``MODELBUS_DATABASE_URL`` its database (so ``modelbus keys ...`` and ``modelbus usage ...`` act on it).
* ``path/to/modelbus`` is this repository. A provider project that a sample generated (cookiecutter) is
  made importable as if ``pip install -e``'d: its ``src/`` and a dist-info with its entry points go on
  ``PYTHONPATH``.
* Config and data directories are empty temporary ones; shell blocks share one working directory per page
  and keep the directory the previous block ``cd``'d into, like a terminal session.
* ``DOCS_SAMPLES_ECHO=1 pytest -s tests/docs`` prints what each shell block printed.
* The local model plugin (``local/...``) is the real one: SmolLM2 and e5 run in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from harness import MASTER, GatewayThread, provider_config
from markdown_samples import ROOT, Block, blocks, pages

from modelbus import Client
from modelbus.config import ModelbusConfig
from modelbus.gateway.settings import GatewaySettings
from modelbus.testing import FakeUpstream
from modelbus.testing.responders import smart_openai_responder
from modelbus.types.models import load_model_table

GATEWAY_URL = "http://localhost:4000"
PROVIDER_KEY = "sk-docs-test-0123456789"

PAGES = [p for p in pages() if any(b.lang in ("python", "bash", "toml", "json") for b in blocks(p))]
# pages whose samples are mostly CLI processes: a test module of their own, so xdist runs them in parallel
SHELL_PAGES = ("cli", "quickstart", "gateway")


def _install_generated_projects(workdir: Path, site: Path) -> list[str]:
    """What ``pip install -e`` of each generated provider project would put on the path."""
    paths = []
    for pyproject in sorted(workdir.glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        entry_points = project.get("entry-points", {}).get("modelbus")
        if not entry_points:
            continue
        dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
        dist_info.mkdir(parents=True, exist_ok=True)
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
        )
        (dist_info / "entry_points.txt").write_text(
            "[modelbus]\n" + "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        )
        paths.append(str(pyproject.parent / "src"))
    if paths:
        paths.append(str(site))
    return paths


class Sandbox:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeUpstream) -> None:
        self.workdir = tmp_path / "work"
        self.workdir.mkdir()
        self.site = tmp_path / "site-packages"
        self.cwd_file = tmp_path / "cwd"
        self.cwd = self.workdir
        self.monkeypatch = monkeypatch
        self.upstream = upstream
        self.gateway: GatewayThread | None = None
        self.key = "mb-..."
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}
        for provider in ("DEEPSEEK", "OPENAI"):
            monkeypatch.setenv(f"{provider}_API_KEY", PROVIDER_KEY)
            monkeypatch.setenv(f"{provider}_BASE_URL", upstream.url)
        monkeypatch.setenv("MODELBUS_MASTER_KEY", MASTER)
        monkeypatch.setenv("MODELBUS_DATABASE_URL", f"sqlite:///{tmp_path / 'gateway.db'}")
        monkeypatch.setenv("NO_COLOR", "1")

    def start_gateway(self) -> None:
        self.gateway = GatewayThread(
            provider_config(self.upstream), database_url=os.environ["MODELBUS_DATABASE_URL"]
        )
        self.gateway.start()
        self.key = self.gateway.create_key(team="docs")

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()

    def prepare(self, code: str) -> str:
        code = code.replace("path/to/modelbus", str(ROOT))
        if self.gateway is not None:
            code = code.replace(GATEWAY_URL, self.gateway.url).replace("mb-...", self.key)
        return code

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        extra = _install_generated_projects(self.workdir, self.site)
        if extra:
            env["PYTHONPATH"] = os.pathsep.join([*extra, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.pop("PYTEST_CURRENT_TEST", None)
        return env

    # -- the four kinds of block -------------------------------------------------------------------

    def python(self, block: Block) -> None:
        self.monkeypatch.chdir(self.cwd)
        exec(compile(self.prepare(block.code), block.where, "exec"), self.namespace)  # noqa: S102

    def bash(self, block: Block) -> None:
        script = f"trap 'pwd > \"{self.cwd_file}\"' EXIT\n{self.prepare(block.code)}"
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, (
            f"{block.where}: exit {result.returncode}\n--- script\n{block.code}--- stdout\n"
            f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
        )
        if os.environ.get("DOCS_SAMPLES_ECHO"):  # for writing docs: pytest -s shows what each block printed
            print(f"--- {block.where}\n{result.stdout}{result.stderr}")
        if self.cwd_file.exists():
            self.cwd = Path(self.cwd_file.read_text().strip())

    def toml(self, block: Block) -> None:
        """A models.toml snippet loads as a model table; a config.toml snippet is read the way a client
        reads it: validated, then its aliases, fallbacks, model rows, provider settings and router
        candidates resolved."""
        data = tomllib.loads(block.code)
        if isinstance(data.get("models"), list):
            path = self.workdir.parent / "models-snippet.toml"
            path.write_text(block.code)
            assert load_model_table(path, provider="docs"), f"{block.where}: no model rows"
            return
        config = ModelbusConfig.from_dict(data, source=block.where)
        for deployment in (data.get("router") or {}).get("deployments", {}).values():
            variable = (deployment.get("settings") or {}).get("api_key_env")
            if variable and not os.environ.get(variable):  # the reader sets it; the sample names it
                self.monkeypatch.setenv(variable, "sk-docs-sample")
        if config.gateway:
            GatewaySettings.load(config)
        with Client(config=config) as client:
            registry = client.runtime.registry
            for name in [
                *config.aliases,
                *config.fallbacks,
                *(t for c in config.fallbacks.values() for t in c),
            ]:
                registry.resolve(name)
            if config.default_model:
                registry.resolve(config.default_model)
            for provider in config.providers:
                assert provider in registry.providers, (
                    f"{block.where}: provider {provider!r} is not installed"
                )
                config.provider_settings(registry.providers[provider])
            router = client.runtime.router  # [router]: validated, and every candidate resolves
            if router is not None:
                for virtual in router.config.models.values():
                    for candidate in virtual.candidates:
                        router.deployment(candidate)

    @staticmethod
    def json(block: Block) -> None:
        json.loads(block.code)


def run_page(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every sample of one page, in order, in a fresh sandbox."""
    page_blocks = [b for b in blocks(page) if b.skip is None]
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(FakeUpstream())
        upstream.respond_with(smart_openai_responder())
        sandbox = Sandbox(tmp_path, monkeypatch, upstream)
        stack.callback(sandbox.stop)
        if any(GATEWAY_URL in b.code for b in page_blocks):
            sandbox.start_gateway()
        for block in page_blocks:
            runner = getattr(sandbox, block.lang, None)
            assert runner is not None or block.lang == "text", (
                f"{block.where}: unknown language {block.lang!r}"
            )
            if runner is not None:
                runner(block)
