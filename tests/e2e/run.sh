#!/usr/bin/env bash
# End-to-end tests with real third-party clients (Python opentelemetry-sdk, openinference, openai,
# openai-agents, anthropic, opentelemetry-instrumentation-openai-v2, traceloop-sdk, langfuse; the
# Rust SDK's example) against a real `spanlens serve`.
#
# Builds the server and the example, creates or reuses the venvs target/e2e-venv (pinned
# tests/e2e/requirements.txt) and target/e2e-venv-traceloop (requirements-traceloop.txt), each
# reinstalled only when its file or the Python changes, and runs pytest. Extra arguments go to pytest (e.g. `tests/e2e/run.sh -k agents -x`).
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

# make_venv DIR REQUIREMENTS: creates or reuses DIR with exactly REQUIREMENTS installed (rebuilt
# only when that file or the Python changes).
make_venv() {
  local venv=$1 req=$2 stamp="$1/.requirements.sha256" want
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
}
venv=target/e2e-venv
make_venv "$venv" tests/e2e/requirements.txt
# Traceloop pins another OpenTelemetry release: its client script runs under its own venv.
make_venv target/e2e-venv-traceloop tests/e2e/requirements-traceloop.txt
export E2E_TRACELOOP_PYTHON="$PWD/target/e2e-venv-traceloop/bin/python"

export SPANLENS_BIN="${SPANLENS_BIN:-$PWD/target/debug/spanlens}"
export SPANLENS_EXAMPLE_BIN="${SPANLENS_EXAMPLE_BIN:-$PWD/target/debug/examples/agent_pipeline}"
export PYTHONDONTWRITEBYTECODE=1
# The Agents SDK must trace (and send nothing to api.openai.com); no proxies for loopback.
unset OPENAI_AGENTS_DISABLE_TRACING OPENAI_BASE_URL OPENAI_API_KEY ANTHROPIC_BASE_URL ANTHROPIC_API_KEY
# No library may phone home (Traceloop's telemetry, Langfuse's cloud default).
export TRACELOOP_TELEMETRY=false
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

set +e
"$venv/bin/python" -m pytest -q -c tests/e2e/pytest.ini --rootdir tests/e2e tests/e2e "$@"
status=$?
set -e
exit "$status"
