#!/usr/bin/env bash
# Measures vocal melody transcription on the bundled vocadito clip against annotator A1 (and A2
# as a cross-check), three ways: the isolated voice, the voice through vocal separation, and the
# voice mixed at 0 dB with the musdb7 accompaniment (looped). With --baseline it scores Basic
# Pitch on the same inputs with the same evaluator (it installs Basic Pitch's Python
# dependencies, pinned in scripts/eval/requirements-basic-pitch.txt, into .venv-basic-pitch).
#
# Usage: scripts/eval/transcription.sh [--baseline]      (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."

baseline=false
case "${1:-}" in
  --baseline) baseline=true ;;
  "") ;;
  *) echo "usage: $0 [--baseline]" >&2; exit 2 ;;
esac

cargo build --release --quiet -p stemscribe-cli -p stemscribe-lab
bin=target/release/stemscribe
lab=target/release/stemscribe-lab
out=target/eval-transcription
mkdir -p "$out"
data=tests/data

"$lab" --quiet mix --vocals "$data/vocadito_1.flac" \
  --accompaniment "$data/music_delta_80s_rock.stem.mp4" --accompaniment-tracks 1 2 3 \
  --vocals-db 0 -o "$out/vocadito_1_mix.wav" >/dev/null

"$bin" --quiet midi "$data/vocadito_1.flac" --isolated-voice --json "$out/isolated.json"
"$bin" --quiet midi "$data/vocadito_1.flac" --json "$out/separated.json"
"$bin" --quiet midi "$out/vocadito_1_mix.wav" --json "$out/mix.json"

score() {
  local label=$1 estimate=$2
  for annotator in A1 A2; do
    echo "== $label, against $annotator"
    "$lab" transcription --reference "$data/vocadito_1_notes$annotator.csv" \
      --estimate "$estimate"
  done
}
score "stemscribe, isolated voice" "$out/isolated.json"
score "stemscribe, voice through separation" "$out/separated.json"
score "stemscribe, mix at 0 dB" "$out/mix.json"

if $baseline; then
  venv=.venv-basic-pitch
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r scripts/eval/requirements-basic-pitch.txt
    "$venv/bin/pip" install --quiet --no-deps basic-pitch==0.4.0
  fi
  cp "$data/vocadito_1.flac" "$out/vocadito_1.flac"
  # Basic Pitch is polyphonic: on the mix it also transcribes the band, so it is scored on
  # stemscribe's separated vocals of the mix as well.
  "$bin" --quiet separate "$out/vocadito_1_mix.wav" -o "$out/vocadito_1_mixvocals.wav"
  "$venv/bin/python" scripts/eval/basic_pitch_baseline.py "$out" "$out/vocadito_1.flac" \
    "$out/vocadito_1_mix.wav" "$out/vocadito_1_mixvocals.wav" 2>&1 | grep '^wrote' >&2
  score "Basic Pitch, isolated voice" "$out/vocadito_1.basic-pitch.json"
  score "Basic Pitch, mix at 0 dB" "$out/vocadito_1_mix.basic-pitch.json"
  score "Basic Pitch, separated vocals of the mix" "$out/vocadito_1_mixvocals.basic-pitch.json"
fi
