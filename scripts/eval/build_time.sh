#!/usr/bin/env bash
# Cold `cargo build --release` wall time of one or more commits, each in a fresh worktree and a
# fresh target directory, dependencies fetched beforehand so that only compiling is timed.
# Compare commits measured in one run: machines here differ from session to session.
#
# usage: scripts/eval/build_time.sh COMMIT...
# prints one line per commit: COMMIT SECONDS, and leaves cargo's --timings report in
# $BUILD_TIME_DIR/<commit>/target/cargo-timings/ (default /tmp/stemscribe-build-time).
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: scripts/eval/build_time.sh COMMIT..." >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
base="${BUILD_TIME_DIR:-/tmp/stemscribe-build-time}"
mkdir -p "$base"

for commit in "$@"; do
    sha="$(git -C "$root" rev-parse --short "$commit")"
    dir="$base/$sha"
    git -C "$root" worktree remove --force "$dir/src" 2>/dev/null || true
    rm -rf "$dir"
    mkdir -p "$dir"
    git -C "$root" worktree add --detach --quiet "$dir/src" "$sha"
    (cd "$dir/src" && cargo fetch --quiet)
    start=$(date +%s.%N)
    (cd "$dir/src" && CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$dir/target" \
        cargo build --release --quiet --timings) >"$dir/build.log" 2>&1
    end=$(date +%s.%N)
    printf '%s %.0f\n' "$sha" "$(echo "$end - $start" | bc)"
    git -C "$root" worktree remove --force "$dir/src"
done
