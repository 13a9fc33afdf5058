#!/usr/bin/env bash
# The studio end to end in Debian's headless Chromium (tests/studio): builds the binary in the
# test profile, serves the real models, drives the page over WebDriver with chromedriver.
# Needs scripts/setup.sh (models, .venv) and scripts/test/tools.sh (chromium, chromium-driver).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv"
[ -x "$venv/bin/python" ] || { echo "studio.sh: run scripts/setup.sh first (it creates $venv)" >&2; exit 1; }
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/python/requirements-test.txt"
cargo build --quiet -p stemscribe-cli
STEMSCRIBE_BIN="$root/target/debug/stemscribe" "$venv/bin/python" -m pytest -q -s "$root/tests/studio" "$@"
