#!/usr/bin/env bash
# Checks decoded lengths against ffmpeg's, for the files people actually have: VBR and CBR MP3
# with and without a Xing/LAME header, ADTS AAC, m4a, FLAC and Ogg Vorbis, made by ffmpeg from a
# 180 s song; and that exactly 10 minutes of each is accepted under the 600 s limit. Every
# format must match ffmpeg exactly but m4a, which may be shorter by the last frame's padding.
# Needs ffmpeg. Usage: scripts/test/check_decoded_lengths.sh [SONG]  (default: the bundled example)
# STEMSCRIBE_PROFILE=dev checks the test build instead of building a release one (CI does).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
song="${1:-$root/tests/data/spleeter_audio_example.mp3}"
command -v ffmpeg >/dev/null || { echo "ffmpeg not found (Debian: apt-get install ffmpeg)" >&2; exit 1; }
case "${STEMSCRIBE_PROFILE:-release}" in
    release) profile=(--release); built=release ;;
    dev) profile=(); built=debug ;;
    *) echo "STEMSCRIBE_PROFILE is release or dev" >&2; exit 2 ;;
esac
cargo build --quiet "${profile[@]}" -p stemscribe-decode --example decoded_length
ours="$root/target/$built/examples/decoded_length"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ffmpeg's decoded frame count of the first audio stream.
ffmpeg_frames() { echo $(( $(ffmpeg -v error -i "$1" -map 0:a:0 -f f32le -ac 1 - | wc -c) / 4 )); }

# make NAME SECONDS: NAME.* from exactly SECONDS of the song, looped, over pink noise.
make() {
    local name="$1" seconds="$2" src="$work/$1.wav"
    ffmpeg -v error -y -stream_loop -1 -i "$song" -f lavfi -i "anoisesrc=c=pink:a=0.05:d=$seconds" \
        -filter_complex "[0:a]aresample=44100,aformat=channel_layouts=stereo,apad[s];[s][1:a]amix=inputs=2:duration=shortest,atrim=end_sample=$((seconds * 44100))" \
        -ar 44100 -ac 2 "$src"
    ffmpeg -v error -y -i "$src" -c:a libmp3lame -q:a 2 "$work/$name.vbr_xing.mp3"
    ffmpeg -v error -y -i "$src" -c:a libmp3lame -q:a 2 -write_xing 0 "$work/$name.vbr_noxing.mp3"
    ffmpeg -v error -y -i "$src" -c:a libmp3lame -b:a 128k "$work/$name.cbr_xing.mp3"
    ffmpeg -v error -y -i "$src" -c:a libmp3lame -b:a 128k -write_xing 0 "$work/$name.cbr_noxing.mp3"
    ffmpeg -v error -y -i "$src" -c:a aac -b:a 128k -f adts "$work/$name.adts.aac"
    ffmpeg -v error -y -i "$src" -c:a aac -b:a 128k "$work/$name.m4a"
    ffmpeg -v error -y -i "$src" -c:a flac "$work/$name.flac"
    ffmpeg -v error -y -i "$src" -c:a libvorbis -q:a 4 "$work/$name.ogg"
    rm "$src"
}

make song 180
make ten 600
failed=0
printf '%-24s %12s %12s %8s\n' file ffmpeg stemscribe difference
for file in "$work"/song.*; do
    expected="$(ffmpeg_frames "$file")"
    got="$("$ours" "$file" | cut -d' ' -f1)"
    printf '%-24s %12s %12s %8s\n' "$(basename "$file")" "$expected" "$got" "$((got - expected))"
    # m4a keeps the edit list's duration, the source's length: ffmpeg also keeps the padding
    # of the last AAC frame (under 1024 frames).
    [ "$((got - expected))" -ge -1024 ] && [ "$((got - expected))" -le 0 ] || failed=1
done
echo
for file in "$work"/ten.*; do
    if result="$("$ours" "$file" 600 2>&1)"; then
        frames="${result%% *}"
        printf '%-24s accepted under 600 s: %s frames (%.3f s)\n' "$(basename "$file")" "$frames" \
            "$(echo "$frames / 44100" | bc -l)"
    else
        printf '%-24s REFUSED: %s\n' "$(basename "$file")" "$result"
        failed=1
    fi
done
exit "$failed"
