#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time (default 60 s each), seeded from fuzz/seeds
# and the test clips. Not part of CI's test run. Needs `cargo install cargo-fuzz`; the stable
# toolchain is used with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly flags), no sanitizer
# (the targets are safe Rust). A crash leaves its input in fuzz/artifacts/TARGET/ and makes
# this script exit non-zero; turn each into a regression test before fixing it.
#
# usage: scripts/test/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(invoke_request decode_audio jobs_request)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
  exit 2
fi

mkdir -p fuzz/corpus/invoke_request fuzz/corpus/decode_audio fuzz/corpus/jobs_request
cp -n fuzz/seeds/invoke_request/* fuzz/corpus/invoke_request/
cp -n fuzz/seeds/jobs_request/* fuzz/corpus/jobs_request/
cp -n tests/data/tone_440hz_* fuzz/corpus/decode_audio/
head -c 4096 tests/data/speech_arctic_a0007.wav > fuzz/corpus/decode_audio/speech_head.wav

status=0
for target in "${targets[@]}"; do
  echo "== fuzzing $target for $seconds s"
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --release "$target" \
      "fuzz/corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20; then
    echo "== $target: crash or failure; inputs in fuzz/artifacts/$target/" >&2
    status=1
  fi
done
# The RoFormer converter's readers (Python): the checkpoint reader's pickle and archive layers
# and the YAML config parser, as long as each cargo-fuzz target in all.
venv_python="$(./scripts/setup.sh --venv-only)"
echo "== fuzzing the converter's readers for $seconds s"
if ! "$venv_python" scripts/test/fuzz_converter.py "$seconds"; then
  echo "== converter readers: findings in fuzz/artifacts/converter/" >&2
  status=1
fi
exit "$status"
