#!/usr/bin/env bash
# Builds the Python package (python/) into the project's virtualenv (.venv, which
# scripts/setup.sh creates) with maturin, in the same profile as `cargo test` so that it reuses
# its build, and runs the package's tests (python/tests) with pytest. They compare the module's
# output with the `stemscribe` binary's (target/debug/stemscribe), which this builds too.
# Needs scripts/setup.sh to have run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv"
[ -x "$venv/bin/python" ] || { echo "python.sh: run scripts/setup.sh first (it creates $venv)" >&2; exit 1; }
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/python/requirements-test.txt"
cargo build --quiet -p stemscribe-cli
(cd "$root/python" && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop --quiet)
STEMSCRIBE_BIN="$root/target/debug/stemscribe" "$venv/bin/python" -m pytest -q "$root/python/tests"
