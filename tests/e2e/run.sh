#!/usr/bin/env bash
# End-to-end tests with real third-party clients (Python opentelemetry-sdk, openinference, openai,
# openai-agents; the Rust SDK's example) against a real `spanlens serve`.
#
# Builds the server and the example, creates or reuses the venv target/e2e-venv with the pinned
# tests/e2e/requirements.txt (reinstalled only when that file or the Python changes), and runs
# pytest. Extra arguments go to pytest (e.g. `tests/e2e/run.sh -k agents -x`).
# Exit status: pytest's.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "tests/e2e: needs Python 3.11 or newer as '$python' (found: $("$python" --version 2>&1 || echo none))" >&2
  exit 1
fi

echo "e2e: building spanlens and the agent_pipeline example"
cargo build -q --locked -p spanlens-cli
cargo build -q --locked -p spanlens --features tokio --example agent_pipeline

venv=target/e2e-venv
req=tests/e2e/requirements.txt
stamp="$venv/.requirements.sha256"
want=$({ cat "$req"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "e2e: creating $venv from $req"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req"
  echo "$want" >"$stamp"
else
  echo "e2e: reusing $venv (requirements unchanged)"
fi

export SPANLENS_BIN="${SPANLENS_BIN:-$PWD/target/debug/spanlens}"
export SPANLENS_EXAMPLE_BIN="${SPANLENS_EXAMPLE_BIN:-$PWD/target/debug/examples/agent_pipeline}"
export PYTHONDONTWRITEBYTECODE=1
# The Agents SDK must trace (and send nothing to api.openai.com); no proxies for loopback.
unset OPENAI_AGENTS_DISABLE_TRACING OPENAI_BASE_URL OPENAI_API_KEY
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

set +e
"$venv/bin/python" -m pytest -q -c tests/e2e/pytest.ini --rootdir tests/e2e tests/e2e "$@"
status=$?
set -e
exit "$status"
