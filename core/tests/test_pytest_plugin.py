"""The fixtures modelbus ships to provider and integration test suites (its pytest11 plugin)."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)


@pytest.fixture(autouse=True)
def _inner_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_isolated_env_removes_keys_endpoints_and_config(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def test_env(modelbus_isolated_env):
            assert os.environ["KEEP_ME"] == "1"
            for name in ("ACME_API_KEY", "SPARK_API_PASSWORD", "ACME_BASE_URL", "MODELBUS_CONFIG"):
                assert name not in os.environ
            assert os.environ["XDG_CONFIG_HOME"].endswith("xdg")
        """
    )
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ACME_API_KEY", "SPARK_API_PASSWORD", "ACME_BASE_URL", "MODELBUS_CONFIG"):
            mp.setenv(name, "leaked")
        mp.setenv("KEEP_ME", "1")
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_smart_upstream_answers_like_an_openai_compatible_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_chat(modelbus_smart_upstream):
            reply = httpx.post(
                modelbus_smart_upstream.url + "/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.status_code == 200
            assert reply.json()["choices"][0]["message"]["role"] == "assistant"
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
