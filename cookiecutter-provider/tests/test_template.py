"""The cookiecutter-provider template, end to end.

Every protocol x auth-style variant is generated non-interactively (cookiecutter's API) and installed
with its ``[test]`` extra into one fresh virtual environment, next to the local core. There the
generated tests pass, ``modelbus plugins`` lists each plugin, and ``modelbus chat`` (the installed CLI,
which finds the plugins through their entry points) talks to a FakeUpstream that answers with the
generated wire samples, the key sent the way the auth style says. Every generated project is ruff
clean, and bad answers stop generation with a one-line message from the pre_gen_project hook.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from modelbus.testing import FakeUpstream, load_sample, load_samples
from modelbus.testing.conformance import REQUIRED_TAGS

TEMPLATE = Path(__file__).resolve().parents[1]
CORE = TEMPLATE.parent / "core"
PROTOCOLS = ("openai-compatible", "native")
# each auth style with a non-default name, so that the answer visibly reaches the generated code
AUTH_STYLES: dict[str, dict[str, str]] = {
    "bearer": {},
    "header": {"auth_header_name": "X-Acme-Key"},
    "query": {"auth_query_param": "api_key"},
}
VARIANTS = [(protocol, auth_style) for protocol in PROTOCOLS for auth_style in AUTH_STYLES]
KEY = "sk-template-test-0123456789"


def generate(output_dir: Path, **answers: str) -> Path:
    """Generate a project without questions; returns its directory."""
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def answers_for(protocol: str, auth_style: str) -> dict[str, str]:
    short = "oai" if protocol == "openai-compatible" else "native"
    return {
        "provider_name": f"Acme {short} {auth_style}",
        "protocol": protocol,
        "auth_style": auth_style,
        **AUTH_STYLES[auth_style],
    }


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess in another venv: no modelbus settings of this machine."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MODELBUS_", "ACME_", "PYTEST_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run(
    args: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


# ---------------------------------------------------------------------------------------- fresh venvs


@dataclass
class FreshVenv:
    """A fresh venv holding the local core and every protocol x auth-style variant of the template."""

    bin: Path
    config_home: Path
    projects: dict[tuple[str, str], Path] = field(default_factory=dict)  # (protocol, auth) -> project

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(XDG_CONFIG_HOME=str(self.config_home), **extra)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> FreshVenv:
    root = tmp_path_factory.mktemp("fresh")
    result = FreshVenv(root / "venv" / "bin", config_home=root / "config")
    for variant in VARIANTS:
        result.projects[variant] = generate(root / "projects", **answers_for(*variant))
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    # the core from this checkout, then each generated plugin with its [test] extra (pytest, hypothesis)
    targets = [str(CORE)] + [f"{project}[test]" for project in result.projects.values()]
    ok(run([result.bin / "python", "-m", "pip", "install", "-q", *targets], env=result.env()))
    return result


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "auth_style"), VARIANTS)
def test_generated_tests_pass_in_a_fresh_venv(fresh_venv: FreshVenv, protocol: str, auth_style: str) -> None:
    project = fresh_venv.projects[protocol, auth_style]
    out = ok(run([fresh_venv.bin / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project))
    summary = out.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), out.stdout[-3000:]
    assert "failed" not in summary, out.stdout[-3000:]
    assert "PlaceholderWarning" in out.stdout, "the placeholder reminder is shown"


@pytest.mark.slow
def test_modelbus_plugins_lists_them(fresh_venv: FreshVenv) -> None:
    out = ok(run([fresh_venv.bin / "modelbus", "plugins", "--json"], env=fresh_venv.env()))
    records = {record["name"]: record for record in json.loads(out.stdout)}
    models = ok(run([fresh_venv.bin / "modelbus", "models", "--json"], env=fresh_venv.env()))
    rows = {row["full_id"]: row for row in json.loads(models.stdout)}
    for project in fresh_venv.projects.values():
        slug = project.name.removeprefix("modelbus-")
        record = records.get(slug)
        assert record is not None, f"{slug} not listed: {sorted(records)}"
        assert record["error"] is None, record
        assert record["distribution"] == project.name
        assert record["providers"] == [slug]
        price = rows[f"{slug}/example-chat"]["price"]
        assert price["source"].startswith("https://")
        assert price["as_of"]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "auth_style"), VARIANTS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_chat_against_fake_upstream(
    fresh_venv: FreshVenv, upstream: FakeUpstream, protocol: str, auth_style: str, stream: bool
) -> None:
    """The installed CLI finds the plugin by its entry point and chats through it."""
    project = fresh_venv.projects[protocol, auth_style]
    slug = project.name.removeprefix("modelbus-")
    name = "chat_stream.json" if stream else "chat_plain.json"
    sample = load_sample(project / "tests" / "samples" / name)
    upstream.replay(sample)
    prefix = slug.upper().replace("-", "_")
    env = fresh_venv.env(**{f"{prefix}_API_KEY": KEY, f"{prefix}_BASE_URL": upstream.url})
    mode = "--stream" if stream else "--no-stream"
    command = [fresh_venv.bin / "modelbus", "chat", "-m", f"{slug}/example-chat", mode, "Hello!"]
    out = ok(run(command, env=env))
    assert sample.expect.content is not None
    assert sample.expect.content in out.stdout
    assert f"{slug}/example-chat" in out.stderr  # the usage and cost line
    assert "$0.0000" in out.stderr
    sent = upstream.requests[-1]
    if auth_style == "bearer":
        assert sent.headers["authorization"] == f"Bearer {KEY}"
    elif auth_style == "header":
        assert sent.headers["x-acme-key"] == KEY
        assert "authorization" not in sent.headers
    else:
        assert sent.query["api_key"] == KEY
        assert "authorization" not in sent.headers


# ---------------------------------------------------------------------------------------- the files


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("defaults"))


def test_default_answers(defaults: Path) -> None:
    assert defaults.name == "modelbus-acme-ai"
    pyproject = (defaults / "pyproject.toml").read_text()
    assert 'name = "modelbus-acme-ai"' in pyproject
    assert '[project.entry-points.modelbus]\nacme-ai = "modelbus_acme_ai:plugin"' in pyproject
    assert 'license = "Apache-2.0"' in pyproject
    module = (defaults / "src" / "modelbus_acme_ai" / "__init__.py").read_text()
    assert "class AcmeAi(OpenAICompatibleProvider):" in module
    assert 'api_key_env = ("ACME_AI_API_KEY",)' in module
    assert (defaults / "tests" / "test_acme_ai.py").is_file()
    assert (defaults / "LICENSE").read_text().lstrip().startswith("Apache License")
    table = (defaults / "src" / "modelbus_acme_ai" / "models.toml").read_text()
    assert re.search(r"^as_of = \d{4}-\d{2}-\d{2}$", table, re.M), "prices carry a date"
    assert re.search(r'^source = "https://', table, re.M), "prices carry a source"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_samples_cover_the_kit(tmp_path: Path, protocol: str) -> None:
    project = generate(tmp_path, protocol=protocol)
    assert not (project / "tests" / "_samples").exists()
    samples = load_samples(project / "tests" / "samples")
    have = {s.kind for s in samples} | {tag for s in samples for tag in s.tags}
    assert set(REQUIRED_TAGS) | {"health"} <= have
    for sample in samples:
        assert sample.source == "https://docs.acme-ai.example/api"
        assert (sample.notes or "").startswith("PLACEHOLDER"), f"{sample.name} is marked as a placeholder"


def test_nothing_left_unrendered(tmp_path: Path) -> None:
    for protocol in PROTOCOLS:
        project = generate(tmp_path / protocol, protocol=protocol, license="MIT", author_email="")
        for path in project.rglob("*"):
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                assert "{{" not in text, path
                assert "{%" not in text, path
        pyproject = (project / "pyproject.toml").read_text()
        assert 'authors = [{ name = "Your Name" }]' in pyproject
        assert (project / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) 20")


@pytest.mark.slow
def test_generated_projects_are_ruff_clean(tmp_path: Path) -> None:
    projects = [
        generate(tmp_path / f"{protocol}-{auth}", **answers_for(protocol, auth))
        for protocol in PROTOCOLS
        for auth in AUTH_STYLES
    ]
    # the longest answers the hook allows, and characters that need care in Python, TOML and JSON
    projects.append(
        generate(
            tmp_path / "long",
            provider_name="Zoë's Über-Long Provider Name & Co (Beta)"[:40],
            provider_slug="a" * 40,
            base_url="https://" + "b" * 71 + ".example/v1",  # 90 characters
            docs_url="https://" + "d" * 70 + ".example/doc",
            api_key_env="K" * 40,
            auth_style="header",
            auth_header_name="x-" + "h" * 38,
            protocol="native",
        )
    )
    for project in projects:  # each project's own ruff settings (its pyproject.toml)
        ok(run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project))
        ok(run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=project))


# ---------------------------------------------------------------------------------------- bad answers

BAD_ANSWERS: list[tuple[dict[str, Any], str]] = [
    ({"provider_name": 'Acme "AI"'}, "provider_name 'Acme \"AI\"' must not contain quotes"),
    ({"provider_name": "   "}, "provider_name must not be empty"),
    ({"provider_name": "???"}, "provider_name '???' needs at least one letter or digit (and "),
    ({"provider_slug": "9lives"}, "provider_slug '9lives' must be lowercase, start with a letter"),
    ({"provider_slug": "Acme"}, "provider_slug 'Acme' must be lowercase"),
    ({"provider_slug": "acme-"}, "provider_slug 'acme-' must not end with or repeat - or _"),
    ({"base_url": "ftp://api.acme.example"}, "base_url 'ftp://api.acme.example' must start with http://"),
    ({"base_url": "api.acme.example/v1"}, "base_url 'api.acme.example/v1' must start with http://"),
    ({"base_url": "https://"}, "base_url 'https://' has no host name"),
    ({"base_url": "https://api.acme.example/v1?x=1"}, "must not have a query or fragment"),
    ({"base_url": "https://api.acme.example/v 1"}, "must be a URL without spaces or quotes"),
    ({"base_url": "https://api.acme.example:99999/v1"}, "has an invalid port"),
    ({"docs_url": "docs.acme.example"}, "docs_url 'docs.acme.example' must start with http://"),
    ({"api_key_env": "acme-key"}, "api_key_env 'acme-key' must be an environment variable name"),
    ({"jurisdiction": "usa"}, "jurisdiction 'usa' must be an upper-case code"),
    ({"auth_style": "header", "auth_header_name": "x api key"}, "auth_header_name 'x api key' must be"),
    ({"auth_style": "header", "auth_header_name": "Content-Type"}, "is set by HTTP itself"),
    ({"auth_style": "query", "auth_query_param": "k&ey"}, "auth_query_param 'k&ey' must be a query"),
    ({"author": ""}, "author must not be empty"),
    ({"author_email": "nobody"}, "author_email 'nobody' is not an e-mail address"),
]


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS, ids=[m[:40] for _, m in BAD_ANSWERS])
def test_bad_answers_stop_generation(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, Any], message: str
) -> None:
    with pytest.raises(FailedHookException):
        generate(tmp_path, **answers)
    hook_lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(hook_lines) == 1, hook_lines
    assert message in hook_lines[0]
    assert not any(tmp_path.iterdir()), "nothing is generated"


def test_answers_for_unused_auth_fields_are_not_checked(tmp_path: Path) -> None:
    """auth_header_name only matters with auth_style=header (and auth_query_param with query)."""
    project = generate(tmp_path, auth_style="bearer", auth_header_name="not a header", auth_query_param="?")
    assert 'auth_prefix = "Bearer "' in (project / "src" / "modelbus_acme_ai" / "__init__.py").read_text()


def test_command_line_message(tmp_path: Path) -> None:
    """What a person sees: the hook's one line, then cookiecutter's own note, exit status 1."""
    result = run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", tmp_path, TEMPLATE, "base_url=ftp://x"],
        env=clean_env(),
    )
    assert result.returncode != 0
    assert "error: base_url 'ftp://x' must start with http:// or https://\n" in result.stderr
    assert not any(tmp_path.iterdir())


def test_choice_outside_the_list_is_refused(tmp_path: Path) -> None:
    """Cookiecutter itself refuses a value that is not among a choice variable's options."""
    with pytest.raises(ValueError, match="auth_style"):
        generate(tmp_path, auth_style="basic")
    assert not any(tmp_path.iterdir())
