#!/usr/bin/env bash
# The Debian tools the tests call (installed when missing): espeak-ng and fluidsynth with its
# General MIDI soundfont make the spoken, rapped and instrumental fixtures of the singing
# decision's tests at test time; ffmpeg is what the format checks compare against; chromium
# and chromium-driver run the studio's end-to-end test (scripts/test/studio.sh).
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v fluidsynth >/dev/null || missing+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing+=(fluid-soundfont-gm)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing ${missing[*]} (apt)" >&2
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
