"""The template directory is Jinja, not Python: keep pytest out of it (`pytest cookiecutter-provider`)."""

from __future__ import annotations

collect_ignore_glob = ["{{*"]
