#!/usr/bin/env bash
# Regenerates the four-track quality tables: per-stem global SDR of bs_4track on the musdb7
# clip (tests/data/music_delta_80s_rock.stem.mp4, the MUSDB18 sample also in ../shared/data),
# and the denoising tables (2-track vs 4-track on the mix with white, pink and 50 Hz hum noise,
# and babble made of the corpus's speech, at 20 and 10 dB SNR against the mix, and clean: SDR
# against the clean stems and how much of each noise reaches each output) on that clip and on
# every clip with stems in the corpus (../shared/data/corpus, eval only; skipped when absent),
# with the mean and the worst over the clips. Needs scripts/setup.sh to have run.
#
# usage: scripts/eval/four_track.sh [STEMS_FILE] [CORPUS_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
stems="${1:-tests/data/music_delta_80s_rock.stem.mp4}"
corpus="${2:-../shared/data/corpus}"
cargo build --release -q -p stemscribe-lab
lab=target/release/stemscribe-lab
echo "== per-stem global SDR, bs_4track (derived stems unless a four-stem card is installed)"
"$lab" separation --stems-file "$stems" --model bs_4track_vocal
echo "== 2track for comparison"
"$lab" separation --stems-file "$stems" --model 2track_vocal
echo "== denoising"
if [ -d "$corpus/stems" ]; then
  "$lab" noise --stems-file "$stems" --corpus "$corpus"
else
  echo "(no corpus at $corpus: the musdb7 clip alone, without babble)"
  "$lab" noise --stems-file "$stems"
fi
