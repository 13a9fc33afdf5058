#!/usr/bin/env bash
# Checks with ffmpeg (not a project dependency; apt-get install ffmpeg) that every output
# format decodes at the requested rate and channel count and within one codec frame of the
# input's length. Prints one line per case; exits non-zero on any mismatch.
#
# usage: scripts/test/check_output_formats.sh [INPUT]   (default: tests/data/rock_mix.wav, 3.0 s)
# STEMSCRIBE_PROFILE=dev checks the test build instead of building a release one (CI does).
set -euo pipefail
cd "$(dirname "$0")/../.."
input="${1:-tests/data/rock_mix.wav}"
case "${STEMSCRIBE_PROFILE:-release}" in
  release) profile=(--release); bin=target/release/stemscribe ;;
  dev) profile=(); bin=target/debug/stemscribe ;;
  *) echo "STEMSCRIBE_PROFILE is release or dev" >&2; exit 2 ;;
esac
cargo build -q "${profile[@]}" -p stemscribe-cli
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seconds=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$input")
status=0
for format in wav mp3 aac; do
  case $format in
    wav) rates="8000 44100 96000"; frame=0 ;;
    mp3) rates="8000 22050 44100 48000"; frame=1152 ;;
    aac) rates="8000 22050 44100 48000 96000"; frame=1024 ;;
  esac
  for rate in $rates; do
    for channels in 1 2; do
      out="$work/out_${rate}_${channels}.$format"
      "$bin" separate "$input" -o "$out" --sample-rate "$rate" --channels "$channels" -q
      got=$(ffprobe -v error -select_streams a:0 -show_entries stream=sample_rate,channels -of csv=p=0 "$out")
      frames=$(ffmpeg -v error -i "$out" -f s16le -acodec pcm_s16le - | wc -c)
      frames=$((frames / 2 / channels))
      expected=$(python3 -c "print(round($seconds * $rate))")
      diff=$((frames - expected))
      verdict=ok
      if [ "$got" != "$rate,$channels" ] || [ "${diff#-}" -gt "$frame" ]; then
        verdict=MISMATCH
        status=1
      fi
      printf '%s %6d Hz %d ch: ffprobe %s, %d frames decoded, %+d vs input (frame %d) %s\n' \
        "$format" "$rate" "$channels" "$got" "$frames" "$diff" "$frame" "$verdict"
    done
  done
done
exit "$status"
