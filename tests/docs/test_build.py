"""The site builds with ``mkdocs build --strict``, and its generated pages say what the code says."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from markdown_samples import CHECK, DOCS, INERT, ROOT, RUN, SKIP_REASONS, all_blocks

from modelbus import Client


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "_hooks" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # material's banner about its successor
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def _text(site: Path, page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text(encoding="utf-8")))


def test_every_page_is_built(site: Path) -> None:
    for path in DOCS.glob("*.md"):
        built = site / ("index.html" if path.stem == "index" else f"{path.stem}/index.html")
        assert built.is_file(), f"{path.name} was not built"
    assert not (site / "_hooks").exists(), "the generator hook must not be published"


def test_providers_page_lists_every_installed_model_with_its_price(site: Path) -> None:
    text = _text(site, "providers")
    models = Client(config={}).models()
    assert models
    for model in models:
        assert model.full_id in text, f"{model.full_id} missing from the providers page"
        if model.price is not None:
            assert model.price.source in (site / "providers" / "index.html").read_text(encoding="utf-8")
            assert model.price.as_of.isoformat() in text
    assert "<!-- generated" not in (site / "providers" / "index.html").read_text(encoding="utf-8")


def test_hook_reference_covers_every_hookspec(site: Path) -> None:
    text = _text(site, "hooks")
    specs = _generator().hook_specs()
    assert len(specs) >= 15
    for _, name, function, _options in specs:
        assert name in text
        first_words = re.split(r"[`:]", (function.__doc__ or "").strip().splitlines()[0])[0].strip()
        assert len(first_words) > 10
        assert first_words in text, f"{name}: docstring not rendered"


def test_generated_signatures_are_valid_python() -> None:
    generated = _generator().hooks_markdown()
    for code in re.findall(r"```python\n(.*?)```", generated, flags=re.S):
        compile(code, "hooks.md (generated)", "exec")


def test_configuration_page_has_every_setting(site: Path) -> None:
    from modelbus.config import ClientConfig
    from modelbus.gateway.settings import GatewaySettings

    text = _text(site, "configuration")
    for model in (ClientConfig, GatewaySettings):
        for name in model.model_fields:
            assert name in text, f"{model.__name__}.{name} missing from configuration.md"


def test_every_fence_has_a_known_language() -> None:
    for block in all_blocks():
        assert block.lang in (*RUN, *CHECK, *INERT), (
            f"{block.where}: fence language {block.lang!r}; use one of {RUN + CHECK + INERT} "
            "(see tests/docs/markdown_samples.py)"
        )


def test_no_test_markers_are_rare_and_justified() -> None:
    skipped = [b for b in all_blocks() if b.skip is not None]
    for block in skipped:
        reason = block.skip.split()[0].rstrip(":,") if block.skip else ""
        assert reason in SKIP_REASONS, f"{block.where}: no-test reason {block.skip!r} not in {SKIP_REASONS}"
        assert block.lang in RUN, f"{block.where}: only runnable blocks can be marked no-test"
    runnable = [b for b in all_blocks() if b.lang in RUN]
    assert len(skipped) * 3 <= len(runnable), f"{len(skipped)} of {len(runnable)} runnable samples skipped"


def test_pages_link_the_tutorial_and_the_hook_reference() -> None:
    tutorial = (DOCS / "writing-a-provider.md").read_text(encoding="utf-8")
    assert "hooks.md" in tutorial
    assert any("writing-a-provider.md" in (DOCS / p).read_text() for p in ("index.md", "concepts.md"))


def test_generated_pages_keep_their_markers() -> None:
    for page, marker in (
        ("providers.md", "providers"),
        ("hooks.md", "hooks"),
        ("configuration.md", "settings"),
    ):
        assert f"<!-- generated: {marker} -->" in (DOCS / page).read_text(encoding="utf-8")
